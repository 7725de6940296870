"""Linear-attention in-context learning: theory, predictors, measures, and the "icl"/"grokking" studies.

- ``theory``      closed-form and ODE time courses (Zhang et al. 2025; Mainali & Teixeira 2025)
- ``algorithms``  in-context predictors (preconditioned GD, PCR-k, least squares, ridge) and their losses
- ``measures``    spectral rank, subspace stability, "which algorithm" over any model's checkpoints
- ``config``      the study dataclasses; ``study`` runs and tracks them; ``grokking`` the modular-addition study
"""

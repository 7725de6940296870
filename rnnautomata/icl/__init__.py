"""Linear-attention in-context learning: theory, predictors, measures, and the "icl"/"grokking"/"icl_classification" studies.

- ``theory``      closed-form and ODE time courses (Zhang et al. 2025; Mainali & Teixeira 2025)
- ``algorithms``  in-context predictors (preconditioned GD, PCR-k, least squares, ridge) and their losses
- ``measures``    spectral rank, subspace stability, "which algorithm" over any model's checkpoints
- ``config``      the study dataclasses; ``study`` runs and tracks them; ``grokking`` the modular-addition study
- ``llc``         the local learning coefficient of any model by SGLD
- ``classification``  in-context vs in-weights classification (Nguyen & Reddy 2024), the "icl_classification" study
"""

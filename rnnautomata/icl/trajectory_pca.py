"""Joint trajectory PCA: several runs' checkpoints in one principal-component frame of function space.

Carroll et al. (2025, Sec. 4) describe a checkpoint by its predictions at every prefix of one
fixed batch (B sequences of the first task t_1, K positions each): one vector of B·K numbers. The
vectors of every checkpoint of every run (several task diversities M) are stacked into one
matrix, centred, and its principal components found by SVD. The ideal predictors (ridge and
each run's dMMSE_M on the same batch) are *projected* into that frame but take no part in the fit.

    pca = TrajectoryPCA(n_components=2).fit(np.concatenate(stacks))      # stacks: [(T_i, F), ...]
    pca.transform(stacks[0])                                             # (T_0, 2)
    pca.explained_variance_ratio_                                        # (2,)

On top of a run folder (kind ``transient_ridge``), :func:`pca_of_runs` reads the checkpoints of
several runs, fits the PCA, projects the baselines and draws the PC1–PC2 figure.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["TrajectoryPCA", "trajectory_pca_figure"]


class TrajectoryPCA:
    """PCA by SVD of the centred stack (no scikit-learn needed).

    Attributes (after ``fit``)
    --------------------------
    mean_ : (F,) the stack's mean row.
    components_ : (n_components, F) orthonormal principal directions, sign fixed so that the
        largest-magnitude entry of each is positive.
    explained_variance_ : (n_components,) variance along each (ddof = 1).
    explained_variance_ratio_ : (n_components,) share of the total variance.
    """

    def __init__(self, n_components: int = 2) -> None:
        self.n_components = n_components

    def fit(self, stack: np.ndarray) -> "TrajectoryPCA":
        """stack (N, F): one row per checkpoint (of every run)."""
        x = np.asarray(stack, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"need a (N ≥ 2, F) stack of checkpoint predictions, got shape {x.shape}")
        if not 1 <= self.n_components <= min(x.shape):
            raise ValueError(f"n_components must be in 1..{min(x.shape)} (got {self.n_components})")
        self.mean_ = x.mean(0)                                                 # (F,)
        _, s, vt = np.linalg.svd(x - self.mean_, full_matrices=False)          # s (r,), vt (r, F)
        vt = vt[: self.n_components]
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])
        self.components_ = vt * signs[:, None]                                 # (n, F)
        var = s ** 2 / (x.shape[0] - 1)
        self.explained_variance_ = var[: self.n_components]
        self.explained_variance_ratio_ = self.explained_variance_ / var.sum()
        return self

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """rows (N, F) or (F,) -> coordinates (N, n_components) or (n_components,)."""
        return (np.asarray(rows, dtype=np.float64) - self.mean_) @ self.components_.T


def trajectory_pca_figure(trajectories: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray],
                          explained: Sequence[float], title: str = "joint trajectory PCA"):
    """Trajectories (name -> (T, 2)) as lines from start (circle) to end (square), references
    (name -> (2,)) as stars; axes labelled with the explained variance. Returns the figure."""
    from rnnautomata import plotting

    fig, ax = plotting.subplots(figsize=(6.5, 5))
    colours = plotting.colours("viridis", np.linspace(0, 0.9, max(len(trajectories), 1)))
    for colour, (name, xy) in zip(colours, trajectories.items()):
        ax.plot(xy[:, 0], xy[:, 1], "-", color=colour, lw=1.2, label=name)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=colour, ms=4)
        ax.plot(xy[-1, 0], xy[-1, 1], "s", color=colour, ms=5)
    markers = plotting.colours("tab10", (np.arange(len(references)) % 10) / 10 + 0.05)
    for colour, (name, xy) in zip(markers, references.items()):
        ax.plot(xy[0], xy[1], "*", ms=12, color=colour, markeredgecolor="k", label=name)
    ax.set(xlabel=f"PC1 ({100 * explained[0]:.1f} %)", ylabel=f"PC2 ({100 * explained[1]:.1f} %)", title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


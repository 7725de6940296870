"""Matplotlib figures of ICL and grokking runs (PNG and SVG, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rnnautomata import plotting
from rnnautomata.render import figures as render_figures

__all__ = ["save_figure", "loss_figure", "modes_figure", "algorithm_figure", "measures_figure"]


def save_figure(fig, path_stem: Path) -> list[str]:
    """Write ``fig`` to ``<stem>.png`` and ``<stem>.svg`` (120 dpi, cropped to the drawing; the SVG
    undated, so reproducible) through :func:`rnnautomata.render.figures.save_figure`; returns the
    file names."""
    paths = render_figures.save_figure(fig, path_stem, ("png", "svg"), dpi=120, bbox_inches="tight")
    return [p.name for p in paths]


def loss_figure(steps, train_loss, test_loss, theory_steps, theory_loss, plateaus: Sequence[float],
                pcr: Sequence[float], title: str):
    fig, ax = plotting.subplots(figsize=(7, 4.2))
    ax.plot(steps, train_loss, lw=2, label="train loss (simulation)")
    ax.plot(steps, test_loss, lw=1, alpha=0.7, label="test loss (simulation)")
    ax.plot(theory_steps, theory_loss, "k--", lw=1.2, label="theory (population GD, same init)")
    for k, v in enumerate(plateaus):
        ax.axhline(v, color="tab:red", lw=0.6, ls=":")
        ax.text(steps[-1], v, f" L{k}", va="center", fontsize=7, color="tab:red")
    for k, v in enumerate(pcr):
        ax.axhline(v, color="tab:green", lw=0.6, ls="-.", alpha=0.6)
    ax.plot([], [], color="tab:red", ls=":", label="plateau losses L_k (T3)")
    ax.plot([], [], color="tab:green", ls="-.", label="PCR-k losses")
    ax.set_xlabel("epoch (full-batch GD step)")
    ax.set_ylabel("MSE")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig


def modes_figure(steps, kappa, theory_steps, theory_kappa, gamma_star, eigvals, title: str):
    fig, ax = plotting.subplots(figsize=(7, 4))
    for d in range(kappa.shape[1]):
        line, = ax.plot(steps, kappa[:, d] / gamma_star[d], lw=2, label=f"mode {d + 1} (λ={eigvals[d]:.2f})")
        ax.plot(theory_steps, theory_kappa[:, d] / gamma_star[d], "--", color=line.get_color(), lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("κ_d / γ*_d  (Γ in Λ's eigenbasis)")
    ax.set_title(title + " — solid: simulation, dashed: theory")
    ax.legend(fontsize=7)
    return fig


def algorithm_figure(steps, distances: Mapping[str, np.ndarray], title: str):
    fig, ax = plotting.subplots(figsize=(7, 4))
    colors = plotting.default_colours()
    for i, (name, d) in enumerate(distances.items()):
        k = name.rsplit("_", 1)[-1]
        color = colors[int(k) % len(colors)] if k.isdigit() else colors[i % len(colors)]
        ax.semilogy(steps, d, label=name, color=color, lw=1.5 if name.startswith("pcr") else 1,
                    ls="-" if name.startswith("pcr") else "--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean (ŷ_model − ŷ_alg)² / mean y²")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    return fig


def measures_figure(steps, rank_curves: Mapping[str, np.ndarray], stability: Mapping[str, np.ndarray],
                    title: str, accuracy: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
    n = 3 if accuracy is not None else 2
    fig, axes = plotting.subplots(n, 1, figsize=(7, 2.6 * n), sharex=True)
    if accuracy is not None:
        s, tr, te = accuracy
        axes[0].plot(s, tr, label="train accuracy")
        axes[0].plot(s, te, label="test accuracy")
        axes[0].set_ylabel("accuracy")
        axes[0].legend(fontsize=7)
    for name, r in rank_curves.items():
        axes[-2].plot(steps, r, label=name)
    axes[-2].set_ylabel("effective rank")
    axes[-2].legend(fontsize=7)
    for name, s in stability.items():
        axes[-1].plot(steps, s, label=name)
    axes[-1].set_ylabel("subspace overlap\nwith previous ckpt")
    axes[-1].set_xlabel("step")
    axes[-1].legend(fontsize=7)
    axes[0].set_title(title)
    return fig

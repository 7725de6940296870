"""The task-diversity threshold K* across a K × N × seeds sweep of in-context classification.

Nguyen & Reddy (2024) find a number of items K* above which the network learns in context (ICL)
instead of memorising (IWL), growing with the context length as K* ∝ N^{1/ν}, ν ≈ 0.7, with
bimodal outcomes across seeds near K*. From one row per finished run (``n_items`` K,
``n_context`` N, ``seed``, final ``acc_icl``, ``chance``), :func:`analyse_threshold` measures:

- per N: K* and the width of a sigmoid in log K fitted to the final ICL accuracies of all its runs
  (:func:`rnnautomata.icl.threshold.fit_threshold`); its spread as the 16th–84th percentiles of
  a bootstrap (runs resampled with replacement within each K); K* of each seed alone where that
  seed's runs straddle the threshold;
- the slope of log K* against log N (least squares; the bootstrap gives its spread), beside the
  paper's 1/0.7 ≈ 1.43;
- bimodality near K*: of the runs with K within a factor :data:`NEAR_FACTOR` of K*, the share whose
  final ICL accuracy is low (IWL), high (ICL) or in the middle band (:data:`MIDDLE_BAND` of the way
  from chance to 1). Bimodal outcomes = both low and high present, few in the middle.

:func:`draw_threshold` draws the three panels (accuracy vs K with the fits; K* vs N; the
accuracies near K*).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["PAPER_SLOPE", "MIDDLE_BAND", "NEAR_FACTOR", "analyse_threshold", "bimodality", "draw_threshold"]

PAPER_SLOPE = 1 / 0.7          # Nguyen & Reddy: K* ∝ N^{1/ν}, ν ≈ 0.7
MIDDLE_BAND = (0.25, 0.75)     # the middle of the way from chance to 1 (L = 2: accuracy 0.625 .. 0.875)
NEAR_FACTOR = 2.0              # "near K*": K*/2 ≤ K ≤ 2 K*


def fit_threshold(n_items: np.ndarray, final_icl: np.ndarray, chance: float = 0.5) -> tuple[float, float]:
    """K*: the midpoint of a sigmoid in log K fitted to final ICL accuracy (one value per run).

    acc(K) = chance + (1 − chance) / (1 + exp(−(log K − log K*) / width)). Returns ``(K*, width)``;
    several seeds per K simply enter as several points. Raises ValueError when the runs do not
    straddle the threshold (all below or all above the half-way level).
    """
    from scipy.optimize import curve_fit

    k, acc = np.log(np.asarray(n_items, dtype=np.float64)), np.asarray(final_icl, dtype=np.float64)
    half = (1 + chance) / 2
    if not (acc.min() < half < acc.max()):
        raise ValueError(f"final ICL accuracies {acc.min():.2f}..{acc.max():.2f} do not straddle {half:.2f}; "
                         "widen the range of K")

    def curve(x, mid, width):
        return chance + (1 - chance) / (1 + np.exp(-(x - mid) / width))

    (mid, width), _ = curve_fit(curve, k, acc, p0=(np.median(k), 0.5), bounds=([k.min() - 5, 1e-3], [k.max() + 5, 10]))
    return float(np.exp(mid)), float(width)



def _fit(k: np.ndarray, acc: np.ndarray, chance: float) -> tuple[float, float] | None:

    try:
        with warnings.catch_warnings(), np.errstate(over="ignore"):  # resamples far from the midpoint
            warnings.simplefilter("ignore")
            return fit_threshold(k, acc, chance)
    except (ValueError, RuntimeError):  # no straddle, or curve_fit did not converge
        return None


def _bootstrap(k: np.ndarray, acc: np.ndarray, chance: float, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """K* of ``n_boot`` resamples (runs drawn with replacement within each K); NaN where no fit."""
    groups = [np.nonzero(k == v)[0] for v in np.unique(k)]
    out = np.full(n_boot, np.nan)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        fit = _fit(k[idx], acc[idx], chance)
        if fit is not None:
            out[b] = fit[0]
    return out


def bimodality(k: np.ndarray, acc: np.ndarray, k_star: float, chance: float) -> dict:
    """Counts of the runs near K* (K*/NEAR_FACTOR ≤ K ≤ NEAR_FACTOR·K*) by final ICL accuracy.

    Examples
    --------
    >>> bimodality(np.array([100, 200, 200, 400, 5000]), np.array([0.5, 0.51, 0.99, 0.7, 1.0]), 200.0, 0.5)
    {'n_near': 4, 'n_low': 2, 'n_middle': 1, 'n_high': 1, 'fraction_middle': 0.25, 'fraction_high': 0.25}
    """
    lo, hi = (chance + f * (1 - chance) for f in MIDDLE_BAND)
    near = (k >= k_star / NEAR_FACTOR) & (k <= k_star * NEAR_FACTOR)
    a = acc[near]
    n = int(near.sum())
    counts = {"n_near": n, "n_low": int((a < lo).sum()), "n_middle": int(((a >= lo) & (a <= hi)).sum()),
              "n_high": int((a > hi).sum())}
    counts["fraction_middle"] = counts["n_middle"] / n if n else None
    counts["fraction_high"] = counts["n_high"] / n if n else None
    return counts


def _slope(n: np.ndarray, k_star: np.ndarray) -> float | None:
    ok = np.isfinite(k_star)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(n[ok]), np.log(k_star[ok]), 1)[0])


def analyse_threshold(runs: Sequence[Mapping], rng: np.random.Generator, n_boot: int = 200) -> dict:
    """K* per N with its spread, the slope of log K* vs log N, and bimodality near K* (module docstring).

    Parameters
    ----------
    runs : one mapping per finished run with ``n_items``, ``n_context``, ``seed``, ``acc_icl``
        (final) and ``chance``.
    rng : draws the bootstrap resamples.
    n_boot : bootstrap resamples per N.

    Returns
    -------
    ``{"per_n": [{n_context, n_runs, k_values, k_star, width, k_star_q16, k_star_q84, n_boot_fits,
    k_star_per_seed, bimodality}], "slope", "slope_q16", "slope_q84", "slope_per_seed", "paper_slope"}``;
    K* is None for an N whose runs do not straddle the threshold.
    """
    by_n: dict[int, list[Mapping]] = {}
    for r in runs:
        by_n.setdefault(int(r["n_context"]), []).append(r)
    per_n, boots = [], []
    for n_ctx in sorted(by_n):
        rows = by_n[n_ctx]
        k = np.array([r["n_items"] for r in rows], dtype=float)
        acc = np.array([r["acc_icl"] for r in rows], dtype=float)
        chance = float(rows[0]["chance"])
        fit = _fit(k, acc, chance)
        boot = _bootstrap(k, acc, chance, rng, n_boot) if fit is not None else np.full(n_boot, np.nan)
        boots.append(boot)
        good = boot[np.isfinite(boot)]
        per_seed = {}
        for seed in sorted({int(r["seed"]) for r in rows}):
            sel = np.array([int(r["seed"]) == seed for r in rows])
            one = _fit(k[sel], acc[sel], chance)
            per_seed[str(seed)] = None if one is None else one[0]
        per_n.append({
            "n_context": n_ctx, "n_runs": len(rows), "k_values": sorted({int(v) for v in k}),
            "k_star": None if fit is None else fit[0], "width": None if fit is None else fit[1],
            "k_star_q16": float(np.percentile(good, 16)) if good.size else None,
            "k_star_q84": float(np.percentile(good, 84)) if good.size else None,
            "n_boot_fits": int(good.size), "k_star_per_seed": per_seed,
            "bimodality": bimodality(k, acc, fit[0], chance) if fit is not None else None,
        })
    ns = np.array([p["n_context"] for p in per_n], dtype=float)
    k_star = np.array([np.nan if p["k_star"] is None else p["k_star"] for p in per_n])
    slope_boot = np.array([_slope(ns, np.array([b[i] for b in boots])) or np.nan for i in range(n_boot)]) if boots else np.array([])
    slope_boot = slope_boot[np.isfinite(slope_boot)]
    seeds = sorted({s for p in per_n for s in p["k_star_per_seed"]})
    slope_per_seed = {s: _slope(ns, np.array([p["k_star_per_seed"].get(s) or np.nan for p in per_n])) for s in seeds}
    return {
        "per_n": per_n, "slope": _slope(ns, k_star),
        "slope_q16": float(np.percentile(slope_boot, 16)) if slope_boot.size else None,
        "slope_q84": float(np.percentile(slope_boot, 84)) if slope_boot.size else None,
        "slope_per_seed": slope_per_seed, "paper_slope": PAPER_SLOPE,
        "middle_band": list(MIDDLE_BAND), "near_factor": NEAR_FACTOR, "n_boot": n_boot,
    }


def _label_log_axis(axis, values: Sequence[int]) -> None:
    """Ticks of a log axis at the swept values, written plainly, and no minor labels (matplotlib's
    default minor labels 2×10², 3×10², ... overlap on a short axis)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    axis.set_major_locator(FixedLocator(values))
    axis.set_ticklabels([f"{v:,}" for v in values])
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def draw_threshold(runs: Sequence[Mapping], analysis: Mapping, path_stem: Path) -> list[Path]:
    """Three panels: final ICL accuracy vs K per N with the sigmoid fits; K* vs N (log–log) with the
    bootstrap spread, the fitted slope and the paper's; the final ICL accuracies of the runs near
    K* (bimodality). Writes ``path_stem.png`` / ``.svg``."""
    from rnnautomata import plotting
    from rnnautomata.icl.figures import save_figure

    fig, (ax_k, ax_n, ax_b) = plotting.subplots(1, 3, figsize=(15, 4.2))
    colours = plotting.default_colours()
    chance = float(runs[0]["chance"]) if runs else 0.5
    near_acc = []
    for i, p in enumerate(analysis["per_n"]):
        c = colours[i % len(colours)]
        rows = [r for r in runs if int(r["n_context"]) == p["n_context"]]
        k = np.array([r["n_items"] for r in rows], dtype=float)
        acc = np.array([r["acc_icl"] for r in rows], dtype=float)
        jitter = np.exp(0.04 * (np.array([int(r["seed"]) for r in rows]) % 5 - 2))
        ax_k.scatter(k * jitter, acc, s=14, color=c, alpha=0.7, label=f"N = {p['n_context']}")
        if p["k_star"] is not None:
            grid = np.geomspace(k.min(), k.max(), 200)
            ax_k.plot(grid, chance + (1 - chance) / (1 + np.exp(-(np.log(grid) - np.log(p["k_star"])) / p["width"])),
                      color=c, lw=1.2)
            ax_k.axvline(p["k_star"], color=c, ls=":", lw=0.8)
            sel = (k >= p["k_star"] / NEAR_FACTOR) & (k <= p["k_star"] * NEAR_FACTOR)
            near_acc.append((p["n_context"], acc[sel], c))
    ax_k.set(xscale="log", xlabel="K (items)", ylabel="final ICL accuracy", ylim=(chance - 0.05, 1.02),
             title="final ICL accuracy vs K (sigmoid fits, K* dotted)")
    _label_log_axis(ax_k.xaxis, sorted({int(r["n_items"]) for r in runs}))
    ax_k.legend(fontsize=8)
    done = [p for p in analysis["per_n"] if p["k_star"] is not None]
    if done:
        ns = np.array([p["n_context"] for p in done], dtype=float)
        ks = np.array([p["k_star"] for p in done])
        lo = np.array([p["k_star_q16"] if p["k_star_q16"] is not None else p["k_star"] for p in done])
        hi = np.array([p["k_star_q84"] if p["k_star_q84"] is not None else p["k_star"] for p in done])
        ax_n.errorbar(ns, ks, yerr=[np.maximum(ks - lo, 0), np.maximum(hi - ks, 0)], fmt="o", capsize=3,
                      label="K* (bootstrap 16–84 %)")
        for p in done:
            seeds = [v for v in p["k_star_per_seed"].values() if v is not None]
            ax_n.scatter([p["n_context"]] * len(seeds), seeds, marker="x", s=16, color="grey")
        centre = np.exp(np.mean(np.log(ks)))
        n_mid = np.exp(np.mean(np.log(ns)))
        if analysis["slope"] is not None:
            ax_n.plot(ns, centre * (ns / n_mid) ** analysis["slope"], lw=1.2,
                      label=f"fit: slope {analysis['slope']:.2f}")
        ax_n.plot(ns, centre * (ns / n_mid) ** PAPER_SLOPE, ls="--", color="k", lw=1,
                  label=f"paper: slope 1/0.7 = {PAPER_SLOPE:.2f}")
    ax_n.set(xscale="log", yscale="log", xlabel="N (context items)", ylabel="K*",
             title="K* vs N (×: one seed's fit)")
    if done:
        _label_log_axis(ax_n.xaxis, sorted(int(n) for n in ns))
        ax_n.legend(fontsize=8)
    band = [chance + f * (1 - chance) for f in MIDDLE_BAND]
    for j, (n_ctx, acc, c) in enumerate(near_acc):
        ax_b.scatter(acc, np.full(len(acc), j) + np.linspace(-0.15, 0.15, len(acc)), color=c, s=18)
    ax_b.axvspan(*band, color="grey", alpha=0.15, label="middle band")
    ax_b.set(xlabel="final ICL accuracy", yticks=range(len(near_acc)),
             yticklabels=[f"N = {n}" for n, _, _ in near_acc], xlim=(chance - 0.05, 1.02),
             title=f"runs with K within ×{NEAR_FACTOR:g} of K*")
    ax_b.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, Path(path_stem))
    return [Path(path_stem).with_suffix(".png"), Path(path_stem).with_suffix(".svg")]

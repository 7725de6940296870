"""Matplotlib figures of merge dynamics, and the one atomic way to save them.

- :func:`plot_timeline` (one run) and :func:`plot_timeline_seeds` (median and IQR over seeds):
  losses, merged and minimised state counts and long-length accuracy against the training step,
  phases shaded, merge events and the first-finite step marked.
- :func:`image_grid`: graphviz PNG drawings in a grid of one figure, with one legend of outputs.
- :func:`save_figure`: a figure to ``<stem>.<fmt>`` for each format, atomically, SVGs undated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnautomata.render.dot import output_colour
from rnnautomata.runs import atomic_savefig

__all__ = ["PHASE_COLOURS", "image_grid", "plot_timeline", "plot_timeline_seeds", "save_figure"]

#: Background colours of the training phases of ``dynamics.json`` (timelines and the report).
PHASE_COLOURS = {"initial": "#bdbdbd", "tree": "#fdae6b", "merging": "#9ecae1", "finite": "#a1d99b"}


def save_figure(fig, path_stem: str | Path, formats: Sequence[str] = ("svg", "png"), *, dpi: float = 150,
                svg_dpi: float | None = None, bbox_inches: str | None = None) -> list[Path]:
    """Write ``fig`` to ``<path_stem>.<fmt>`` for each of ``formats``, each file atomically.

    SVGs carry no date, so the same figure gives the same bytes. The parent folder is created.

    Parameters
    ----------
    dpi : float
        Resolution of raster formats (and of SVG unless ``svg_dpi`` is given).
    svg_dpi : float, optional
        Resolution of the SVG (it sets the size of embedded images and of the canvas in points).
    bbox_inches : str, optional
        ``"tight"`` crops every file to the drawn area (default: the figure's size).

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        svg = fmt == "svg"
        atomic_savefig(fig, path, dpi=svg_dpi if svg and svg_dpi is not None else dpi,
                       metadata={"Date": None} if svg else {},
                       **({"bbox_inches": bbox_inches} if bbox_inches is not None else {}))
        paths.append(path)
    return paths


def image_grid(pngs: Sequence[Path], stem: Path, *, titles: Sequence[str] | None = None,
               outputs: Sequence[str] = ()) -> list[Path]:
    """Place PNG drawings (graphviz, 96 dpi) in a grid of one matplotlib figure (PNG and SVG).

    Two columns for up to four drawings, else three. Each panel is titled at 12 pt; a drawing is
    shown at its natural size, shrunk only to fit its panel (never enlarged: a two-state machine
    stays as small as it is). ``outputs`` adds one legend of the output colours under the grid.
    """
    from matplotlib.figure import Figure
    from matplotlib.image import imread
    from matplotlib.patches import Patch

    images = [imread(p) for p in pngs]
    n_cols = min(2 if len(images) <= 4 else 3, len(images))
    n_rows = -(-len(images) // n_cols)
    panel_w, panel_h, title_h, legend_h = 6.0, 5.5, 0.6, 0.5 if outputs else 0.0  # inches
    fig = Figure(figsize=(panel_w * n_cols, (panel_h + title_h) * n_rows + legend_h), dpi=100)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for i, (ax, im) in enumerate(zip(axes, images)):
        height, width = im.shape[0] / 96, im.shape[1] / 96  # inches at graphviz's 96 dpi
        scale = min(1.0, panel_w / width, panel_h / height)
        # axes span the whole panel; pad the data limits so that the image keeps that scale
        span_x, span_y = panel_w / scale * 96, panel_h / scale * 96  # pixels of the image the panel shows
        ax.imshow(im, interpolation="antialiased")
        ax.set_xlim((im.shape[1] - span_x) / 2, (im.shape[1] + span_x) / 2)
        ax.set_ylim((im.shape[0] + span_y) / 2, (im.shape[0] - span_y) / 2)
        if titles is not None:
            ax.set_title(titles[i], fontsize=12, pad=6)
    if outputs:
        handles = [Patch(facecolor=output_colour(i), edgecolor="#333333", label=label) for i, label in enumerate(outputs)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles) + 1, fontsize=11, frameon=False,
                   title="output", title_fontsize=11, bbox_to_anchor=(0.5, 0.0))
    total_h = (panel_h + title_h) * n_rows + legend_h
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.55 / total_h, bottom=(legend_h + 0.05) / total_h,
                        wspace=0.05, hspace=title_h / panel_h)
    return save_figure(fig, stem, ("png", "svg"), svg_dpi=100)


def _series(ck: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if c.get(key) is None else float(c[key]) for c in ck], dtype=float)


def _acc_series(ck: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    lengths = sorted({k for c in ck for k in (c.get("acc_by_length") or {})}, key=lambda k: int(k))
    return {k: np.array([np.nan if (c.get("acc_by_length") or {}).get(k) is None
                         else float(c["acc_by_length"][k]) for c in ck]) for k in lengths}


def _shade_phases(axes, phases: Sequence[Mapping[str, Any]], label_ax=None) -> None:
    for phase in phases:
        colour = PHASE_COLOURS.get(phase["name"], "#eeeeee")
        for ax in axes:
            ax.axvspan(phase["start_step"], phase["end_step"], color=colour, alpha=0.18, lw=0)
        if label_ax is not None:
            label_ax.text((phase["start_step"] + phase["end_step"]) / 2, 1.01, phase["name"],
                          transform=label_ax.get_xaxis_transform(), ha="center", va="bottom",
                          fontsize=8, color="#444444")


def _plain_log_axis(ax) -> None:
    """Label a log y axis with plain numbers (0.25, 2, 100) instead of powers of ten; minor
    ticks at 2, 3 and 5 times a power of ten are labelled when the axis spans under 1.5 decades."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def minor(value: float, _) -> str:
        mantissa = value / 10 ** np.floor(np.log10(value) + 1e-9)
        return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""

    low, high = ax.get_ylim()
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor) if high / max(low, 1e-300) < 30 else NullFormatter())


def plot_timeline(
    dynamics: Mapping[str, Any],
    path_stem: str | Path,
    formats: Sequence[str] = ("svg", "png"),
    *,
    title: str | None = None,
    xscale: str = "linear",
) -> list[Path]:
    """The merge timeline of one run, in stacked panels sharing the step axis.

    Top: train and validation loss (log scale). Middle: merged and minimised number of states (log
    scale), merge events as markers sized by the number of states that merged. Bottom (when the
    run has them): the network's accuracy on long strings. Phases are shaded and the step from
    which the machine stays finite is a dashed line.

    Parameters
    ----------
    dynamics : dict
        A ``rnnautomata.dynamics/1`` dict (dynamics.json).
    path_stem : path
        Files ``<path_stem>.svg`` and ``.png`` (``formats``) are written.
    xscale : str
        Matplotlib x scale, e.g. ``"linear"`` or ``"symlog"`` (early log-spaced checkpoints).

    Returns
    -------
    list of Path
    """
    from matplotlib.figure import Figure

    ck = dynamics["checkpoints"]
    steps = np.array([c["step"] for c in ck], dtype=float)
    acc = _acc_series(ck)
    n_panels = 3 if acc else 2
    fig = Figure(figsize=(9, 2.4 * n_panels + 0.6), dpi=100)
    axes = fig.subplots(n_panels, 1, sharex=True, gridspec_kw={"hspace": 0.12})
    ax_loss, ax_states = axes[0], axes[1]

    for key, label, colour in (("train_loss", "train loss", "#1f77b4"), ("val_loss", "validation loss", "#d62728")):
        y = _series(ck, key)
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax_loss.plot(steps[ok], y[ok], color=colour, lw=1.4, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")

    n_states = _series(ck, "n_states")
    n_min = _series(ck, "n_states_min")
    ax_states.plot(steps, n_states, color="#333333", lw=1.5, label="merged states")
    ax_states.plot(steps, n_min, color="#9467bd", lw=1.3, ls="--", label="minimised states")
    merged = np.array([sum(len(e["from"]) - 1 for e in (c.get("merged") or [])) for c in ck], dtype=float)
    events = merged > 0
    if events.any():
        ax_states.scatter(steps[events], n_states[events], s=8 + 40 * np.sqrt(merged[events] / merged.max()),
                          facecolor="none", edgecolor="#e6550d", lw=0.8, zorder=3,
                          label="merge event (size: states merged)")
    ax_states.set_yscale("log")
    ax_states.set_ylabel("number of states")

    if acc:
        ax_acc = axes[2]
        cmap = ["#31a354", "#3182bd", "#756bb1", "#e6550d", "#636363"]
        for i, (length, y) in enumerate(acc.items()):
            ok = np.isfinite(y)
            ax_acc.plot(steps[ok], y[ok], color=cmap[i % len(cmap)], lw=1.2, marker=".", ms=3,
                        label=f"length {int(length):,}")
        ax_acc.set_ylim(-0.03, 1.03)
        ax_acc.set_ylabel("accuracy\n(last output)")

    _shade_phases(axes, dynamics.get("phases") or [], label_ax=ax_loss)
    ff = dynamics.get("finite_from_step")
    for ax in axes:
        if ff is not None:
            ax.axvline(ff, color="#2ca02c", ls="--", lw=1.2,
                       label=f"finite from step {ff:,}" if ax is ax_states else None)
        ax.grid(alpha=0.25, lw=0.5)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    axes[-1].set_xlabel("training step")
    axes[-1].set_xscale(xscale)
    for ax in (ax_loss, ax_states):
        _plain_log_axis(ax)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.92 if title else 0.95, bottom=0.08)
    return save_figure(fig, path_stem, formats)


_SEED_TRACES = 64  # up to this many seeds, each seed's state count is drawn too


def plot_timeline_seeds(
    runs: Sequence[Mapping[str, Any]],
    path_stem: str | Path,
    formats: Sequence[str] = ("svg", "png"),
    *,
    title: str | None = None,
    xscale: str = "linear",
) -> list[Path]:
    """The merge timeline across seeds: median and interquartile band of each curve.

    Each run's losses and state counts are interpolated (in log space) onto the union of all
    runs' steps, inside that run's range only. The median first-finite step is a dashed line and
    its interquartile range a green band; a bottom strip has one tick per seed at its first finite
    step (and counts the seeds that never became finite). Up to 64 seeds, each seed's merged state
    count is drawn as a thin line behind the band.

    Parameters
    ----------
    runs : sequence of dict
        ``rnnautomata.dynamics/1`` dicts, one per seed.

    Returns
    -------
    list of Path
    """
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("plot_timeline_seeds needs at least one dynamics dict")
    grid = np.unique(np.concatenate([[c["step"] for c in d["checkpoints"]] for d in runs]).astype(float))

    def on_grid(key: str) -> np.ndarray:  # (n_runs, len(grid)), NaN outside a run's range
        rows = []
        for d in runs:
            ck = d["checkpoints"]
            x = np.array([c["step"] for c in ck], dtype=float)
            y = _series(ck, key)
            ok = np.isfinite(y) & (y > 0)
            row = np.full(grid.shape, np.nan)
            if ok.sum() >= 1:
                inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
                row[inside] = np.exp(np.interp(grid[inside], x[ok], np.log(y[ok])))
            rows.append(row)
        return np.array(rows)

    fig = Figure(figsize=(9, 6.6), dpi=100)
    ax_loss, ax_states, ax_first = fig.subplots(3, 1, sharex=True, gridspec_kw={"hspace": 0.12, "height_ratios": [3, 3, 1]})
    if len(runs) <= _SEED_TRACES:  # every seed's own state count, thin, behind the band
        for row in on_grid("n_states"):
            ax_states.plot(grid, row, color="#333333", lw=0.5, alpha=0.25)
    curves = ((ax_loss, "train_loss", "train loss", "#1f77b4"), (ax_loss, "val_loss", "validation loss", "#d62728"),
              (ax_states, "n_states", "merged states", "#333333"),
              (ax_states, "n_states_min", "minimised states", "#9467bd"))
    import warnings

    for ax, key, label, colour in curves:
        values = on_grid(key)
        if np.isnan(values).all():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns at the edges
            low, median, high = np.nanpercentile(values, [25, 50, 75], axis=0)
        ax.plot(grid, median, color=colour, lw=1.5, label=f"{label} (median)")
        ax.fill_between(grid, low, high, color=colour, alpha=0.2, lw=0)
    finite = [d.get("finite_from_step") for d in runs]
    finite = [f for f in finite if f is not None]
    for ax in (ax_loss, ax_states):
        if finite:
            q1, med, q3 = np.percentile(finite, [25, 50, 75])
            ax.axvspan(q1, q3, color="#2ca02c", alpha=0.12, lw=0)
            ax.axvline(med, color="#2ca02c", ls="--", lw=1.2,
                       label=f"finite from (median; {len(finite)}/{len(runs)} runs)" if ax is ax_states else None)
        ax.set_yscale("log")
        ax.grid(alpha=0.25, lw=0.5)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    # the distribution of the first finite step: one tick per seed that became finite
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(finite))  # fixed: the same figure every time
    ax_first.scatter(finite, jitter, marker="|", s=120, color="#2ca02c", lw=1.5)
    never = len(runs) - len(finite)
    ax_first.set_ylim(-0.6, 0.6)
    ax_first.set_yticks([])
    ax_first.set_ylabel("first\nfinite", fontsize=8)
    ax_first.text(0.99, 0.5, f"never finite: {never} of {len(runs)}", transform=ax_first.transAxes,
                  ha="right", va="center", fontsize=8)
    ax_first.grid(alpha=0.25, lw=0.5, axis="x")
    ax_loss.set_ylabel("loss")
    ax_states.set_ylabel("number of states")
    ax_first.set_xlabel("training step")
    ax_first.set_xscale(xscale)
    for ax in (ax_loss, ax_states):
        _plain_log_axis(ax)
    fig.suptitle(title or f"{len(runs)} seeds: median and interquartile range", fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.08)
    return save_figure(fig, path_stem, formats)


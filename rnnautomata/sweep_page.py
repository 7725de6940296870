"""What a sweep shows: the phase diagram (:func:`draw_phase_diagram`) and the sweep's page
(:func:`write_sweep_report`, ``SWEEP/report.html``).

Both read what :mod:`rnnautomata.sweep` wrote (the rows of ``aggregate.json``, ``sweep.json``,
the SVGs under ``figures/``); neither runs anything. The measures come from
:mod:`rnnautomata.sweep_aggregate`, the table style and sorting from :mod:`rnnautomata.html_page`.
"""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rnnautomata.html_page import SORT_SCRIPT, TABLE_CSS, sort_cell
from rnnautomata.runs import atomic_savefig, atomic_write_text
from rnnautomata.sweep_aggregate import GENERALISES_ACCURACY, GENERALISES_MIN_LENGTH, MEASURES, show_value

__all__ = ["draw_phase_diagram", "write_sweep_report"]


def draw_phase_diagram(rows: Sequence[Mapping[str, Any]], grid: Mapping[str, list], folder: str | Path,
                       measures: Sequence[tuple[str, str, bool]] = MEASURES) -> list[Path]:
    """Heatmaps of ``measures`` (default :data:`MEASURES`; ``(column, title, log colour scale)``) over
    the two grid axes with most values (rows: the first, columns: the second; one axis: a single row),
    one figure per setting of any further axes: ``folder/phase_diagram.png`` / ``.svg``
    (``phase_diagram,KEY=V.png`` for the further axes). Panels whose title names a fraction or an
    accuracy are coloured on [0, 1]."""
    from matplotlib.colors import LogNorm

    from rnnautomata import plotting

    keys = list(grid)
    axes = sorted(keys, key=lambda k: -len(grid[k]))[:2]
    axes = [k for k in keys if k in axes]  # grid order
    y_key, x_key = (axes[0], axes[1]) if len(axes) == 2 else (None, axes[0])
    rest = [k for k in keys if k not in axes]
    written = []
    for fixed in itertools.product(*(grid[k] for k in rest)):
        fixed_params = dict(zip(rest, fixed))
        ys = grid[y_key] if y_key else [None]
        xs = grid[x_key]
        lookup = {}
        for row in rows:
            if all(row[k] == v for k, v in fixed_params.items()):
                lookup[(row[y_key] if y_key else None, json.dumps(row[x_key]))] = row
        n_rows = max(1, -(-len(measures) // 3))
        fig, panels = plotting.subplots(n_rows, 3, figsize=(13, (1.6 + 0.45 * len(ys)) * n_rows), constrained_layout=True,
                                   squeeze=False)
        for ax in panels.flat[len(measures):]:
            ax.set_axis_off()
        for ax, (column, title, log) in zip(panels.flat, measures):
            data = np.full((len(ys), len(xs)), np.nan)
            for i, y in enumerate(ys):
                for j, x in enumerate(xs):
                    row = lookup.get((y, json.dumps(x)))
                    if row is not None and row.get(column) is not None:
                        data[i, j] = row[column]
            finite = data[np.isfinite(data)]
            norm = LogNorm(vmin=max(finite.min(), 1e-12), vmax=max(finite.max(), 1e-12)) if log and finite.size and (finite > 0).all() else None
            kwargs = {"vmin": 0.0, "vmax": 1.0} if "fraction" in title or "accuracy" in title else {}
            image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", norm=norm,
                              **({} if norm is not None else kwargs))
            for i, y in enumerate(ys):
                for j in range(len(xs)):
                    v = data[i, j]
                    failed = (lookup.get((y, json.dumps(xs[j]))) or {}).get("status") == "failed"
                    text = ("failed" if failed else "—") if not np.isfinite(v) else f"{v:.2g}" if abs(v) < 100 else f"{v:,.0f}"
                    r, g, b, _ = image.cmap(float(np.ravel(np.ma.filled(image.norm(v), 0.0))[0])) if np.isfinite(v) else (1, 1, 1, 1)
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on a dark cell
                    ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k")
            ax.set_xticks(range(len(xs)), [show_value(x) for x in xs])
            ax.set_yticks(range(len(ys)), [show_value(y) for y in ys] if y_key else [""])
            ax.set_xlabel(x_key)
            if y_key:
                ax.set_ylabel(y_key)
            ax.set_title(title, fontsize=10)
            fig.colorbar(image, ax=ax, shrink=0.85)
        suffix = "".join(f",{k}={show_value(v)}" for k, v in fixed_params.items())
        if fixed_params:
            fig.suptitle(", ".join(f"{k} = {show_value(v)}" for k, v in fixed_params.items()))
        stem = Path(folder) / f"phase_diagram{suffix}"
        for ext in ("png", "svg"):
            written.append(atomic_savefig(fig, stem.with_suffix(f".{ext}") if not suffix else Path(f"{stem}.{ext}"), dpi=110))
    return written


def write_sweep_report(root: str | Path) -> Path:
    """Write ``root/report.html``: the sweep's table (sortable), its heatmaps, links to every run's report."""
    root = Path(root)
    sweep = json.loads((root / "sweep.json").read_text())
    agg = json.loads((root / "aggregate.json").read_text())
    keys = list(sweep["grid"])
    runs_by_point: dict[str, list[dict]] = {}
    for run in sweep["runs"]:
        runs_by_point.setdefault(run["point"], []).append(run)
    automata = sweep.get("study", {}).get("kind", "automata") == "automata"
    columns = [("fraction_generalising", "generalising", "{:.2f}"), ("fraction_finite", "finite", "{:.2f}"),
               ("fraction_equivalent", "= truth", "{:.2f}"), ("first_finite_step_median", "first finite step", "{:,.0f}"),
               ("n_never_finite", "never finite", "{}"), ("peak_states_median", "peak states", "{:,.0f}"),
               ("final_states_min_median", "final minimised", "{:,.1f}"), ("final_train_loss_median", "final loss", "{:.3g}")]
    if not automata:  # every fraction and median of the kind's summaries
        found = dict.fromkeys(c for r in agg["points"] for c in r if c.startswith("fraction_") or c.endswith("_median"))
        columns = [(c, c.removeprefix("fraction_").removesuffix("_median").replace("_", " "), "{:.3g}") for c in found]
    head = keys + ["seeds done", "status"] + [c[1] for c in columns] + ["runs"]
    body = []
    for row in agg["points"]:
        cells = [sort_cell(html.escape(show_value(row[k])), json.dumps(row[k]).strip('"')) for k in keys]
        cells.append(sort_cell(f"{row['n_done']} of {row['n_seeds']}", row["n_done"]))
        status = row["status"] + (f": {row['error']}" if row.get("error") else "")
        cells.append(sort_cell(html.escape(status), row["status"], None if row["status"] == "complete" else "no"))
        for column, _, fmt in columns:
            v = row.get(column)
            cells.append(sort_cell("—" if v is None else fmt.format(v), -1 if v is None else v))
        links = []
        for run in runs_by_point[row["point"]]:
            report = root / run["dir"] / "report.html"
            label = run["dir"].split("/")[-1] if not run["batched"] else "seeds"
            if report.is_file():
                links.append(f'<a href="{html.escape(run["dir"])}/report.html">{html.escape(label)}</a>')
        cells.append(sort_cell(" ".join(links) or "—", len(links)))
        body.append("<tr>" + "".join(cells) + "</tr>")
    figures = []
    for svg_path in sorted((root / "figures").glob("*.svg"), key=lambda p: (not p.name.startswith("phase_diagram"), p.name)):
        svg = svg_path.read_text()
        if svg.startswith("<?xml"):
            svg = svg[svg.index("?>") + 2:]
        figures.append(f'<div class="figure">{svg}</div>')
    n_done = sum(r["status"] == "complete" for r in sweep["runs"])
    n_failed = sum(r["status"] == "failed" for r in sweep["runs"])
    name = html.escape(str(sweep.get("name") or root.name))
    grid_text = "; ".join(f"{html.escape(k)} ∈ {{{html.escape(', '.join(show_value(v) for v in vs))}}}" for k, vs in sweep["grid"].items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: sweep</title>
<style>{TABLE_CSS}</style></head>
<body>
<h1>{name}: sweep of {len(agg['points'])} grid points × {len(sweep['seeds'])} seeds</h1>
<ul><li>grid: {grid_text}</li><li>seeds: {html.escape(_seed_text(sweep['seeds']))}</li>
<li>runs: {n_done} complete, {n_failed} failed, {len(sweep['runs']) - n_done - n_failed} to do (rerun the sweep to finish)</li>
<li>{_MEANING if automata else "fractions and medians over the seeds of each point of each run's summary"}</li></ul>
{''.join(figures)}
<h2>Every grid point</h2>
<p>Click a column header to sort.</p>
<table><thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>
<tbody>{''.join(body)}</tbody></table>
<script>{SORT_SCRIPT}</script>
</body></html>
"""
    path = root / "report.html"
    atomic_write_text(path, page)
    return path


_MEANING = (f"a seed generalises when its accuracy at the longest test length (≥ {GENERALISES_MIN_LENGTH:,}) is "
            f"≥ {GENERALISES_ACCURACY}; finite: its final extracted machine (ε rule) is finite; medians over the seeds "
            "of the point")

def _seed_text(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 8]`` -> ``"0-3, 8"``."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(str(start) if start == s else f"{start}-{s}")
            start = None
    return ", ".join(parts)

"""The HTML report of a many-seed folder: the seeds timeline and one row per seed.

:func:`write_seeds_report` reads ``aggregate.json`` (written by
:func:`rnnautomata.aggregate.aggregate_seeds`) and ``figures/seeds_timeline.svg``, and writes one
self-contained ``report.html``: the spread over seeds (peak state count, first finite step,
final machines), the timeline inline, and a table with every seed's peak, first finite step, final
machine, equivalence to the truth and accuracy by length, sortable by clicking a column header.
A seed whose own ``report.html`` exists (``rnnautomata report DIR/seed_0003``) is linked.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from rnnautomata.errors import CheckpointError
from rnnautomata.html_page import SORT_SCRIPT, TABLE_CSS, sort_cell
from rnnautomata.runs import RunDir, atomic_write_text

__all__ = ["write_seeds_report"]

def _band(spread: dict | None, fmt: str = "{:,.0f}") -> str:
    if not spread:
        return "—"
    return f"{fmt.format(spread['median'])} [{fmt.format(spread['q25'])}, {fmt.format(spread['q75'])}]"


def write_seeds_report(out_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``out_dir/report.html`` (or ``out``) for a many-seed folder; returns its path.

    Raises
    ------
    CheckpointError if ``out_dir`` is not a many-seed folder or has no ``aggregate.json`` yet.
    """
    top = RunDir(Path(out_dir))
    manifest = top.read_manifest()
    if manifest.get("kind") != "seeds":
        raise CheckpointError(f"{top.root} is a {manifest.get('kind')!r} run, not a many-seed folder")
    agg_path = top.root / "aggregate.json"
    if not agg_path.is_file():
        raise CheckpointError(f"{top.root} has no aggregate.json yet; run `rnnautomata track {top.root}` first")
    agg = json.loads(agg_path.read_text())
    svg_path = top.figures_dir / "seeds_timeline.svg"
    svg = svg_path.read_text() if svg_path.is_file() else "<p>(no figures/seeds_timeline.svg: run `rnnautomata track` on the folder)</p>"
    if svg.startswith("<?xml"):
        svg = svg[svg.index("?>") + 2 :]

    seeds = agg["seeds"]
    finals = agg["final"]["per_seed"]
    peaks = agg.get("peak", {}).get("per_seed", [None] * len(seeds))
    first = agg["finite_from_step"]["per_seed"]
    lengths = sorted({int(k) for f in finals for k in f.get("acc_by_length", {})})
    n_eq = sum(bool(f.get("equivalent_to_truth")) for f in finals)
    ff = agg["finite_from_step"]

    head = ["seed", "peak states", "peak minimised", "peak step", "first finite step",
            "final states", "final minimised", "finite", "equivalent to truth"] + [f"acc len {n:,}" for n in lengths]
    rows = []
    for seed, seed_dir, final, peak, finite_from in zip(seeds, agg["seed_dirs"], finals, peaks, first):
        link = top.root / seed_dir / "report.html"
        name = f'<a href="{html.escape(seed_dir)}/report.html">{seed}</a>' if link.is_file() else str(seed)
        eq = final.get("equivalent_to_truth")
        cells = [
            sort_cell(name, seed),
            sort_cell(peak["n_states"] if peak else "—", peak["n_states"] if peak else -1),
            sort_cell(peak["n_states_min"] if peak else "—", peak["n_states_min"] if peak else -1),
            sort_cell(f"{peak['step']:,}" if peak else "—", peak["step"] if peak else -1),
            sort_cell(f"{finite_from:,}" if finite_from is not None else "never", finite_from if finite_from is not None else 1e18,
                  None if finite_from is not None else "no"),
            sort_cell(final["n_states"]), sort_cell(final["n_states_min"]),
            sort_cell("yes" if final["finite"] else "no", int(bool(final["finite"])), None if final["finite"] else "no"),
            sort_cell({True: "yes", False: "no", None: "—"}[eq], {True: 1, False: 0, None: -1}[eq], "no" if eq is False else None),
        ]
        for n in lengths:
            acc = final.get("acc_by_length", {}).get(str(n))
            cells.append(sort_cell("—" if acc is None else f"{acc:.3f}", -1 if acc is None else acc))
        rows.append("<tr>" + "".join(cells) + "</tr>")

    name = html.escape(str(agg.get("name") or top.root.name))
    first_median = "—" if ff["median"] is None else f"{ff['median']:,.0f}"
    summary = [
        f"<li>{len(seeds)} seeds trained together as one batched model; each seed's run is an ordinary run folder</li>",
        f"<li>peak merged states (end of the tree phase): median [q25, q75] {_band(agg.get('peak', {}).get('n_states'))}, "
        f"at step {_band(agg.get('peak', {}).get('step'))}</li>",
        f"<li>first finite step: median {first_median}; never finite: {ff['n_never']} of {len(seeds)}</li>",
        f"<li>final machines equivalent to the task's machine: {n_eq} of {len(seeds)}</li>",
    ]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: {len(seeds)} seeds</title>
<style>{TABLE_CSS}</style></head>
<body>
<h1>{name}: {len(seeds)} seeds</h1>
<ul>{''.join(summary)}</ul>
<div class="figure">{svg}</div>
<h2>Every seed</h2>
<p>Click a column header to sort. Peak = the checkpoint with the most merged states.</p>
<table><thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<script>{SORT_SCRIPT}</script>
</body></html>
"""
    path = Path(out) if out is not None else top.root / "report.html"
    atomic_write_text(path, page)
    return path

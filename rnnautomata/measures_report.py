"""One self-contained HTML page of a measure-style run: ``RUN/report.html``.

The kinds that measure a run as numbers over training rather than as machines (``icl``,
``grokking``, ``icl_classification``, ``transient_ridge``, ``induction``) share this page; its
stylesheet and number format come from :mod:`rnnautomata.html_page`, as the automata report's
(:mod:`rnnautomata.report`) do. Sections:

1. the run: name, kind, versions, manifest status (a failed run says so and why), study.toml;
2. the summary: the kind's :meth:`~rnnautomata.studies.base.StudyKind.summarise` row as a table,
   and any extra tables the kind passes (``transient_ridge``: the baselines' own losses);
3. every figure of ``RUN/figures`` inline (the SVG where there is one, else the PNG as base64);
4. the metric rows of metrics.jsonl: the step and every numeric key, thinned evenly to at most
   :data:`MAX_ROWS` rows (first and last kept);
5. the summary files as written (summary.json, theory.json), folded.

Everything taken from the run is escaped; the file needs no network.

Examples
--------
>>> from rnnautomata.studies import run_kind
>>> write_measures_report("runs/tr_m16", run_kind("runs/tr_m16"))   # doctest: +SKIP
PosixPath('runs/tr_m16/report.html')
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnautomata import __version__
from rnnautomata.errors import CheckpointError
from rnnautomata.html_page import CSS, fmt
from rnnautomata.render import clean_svg
from rnnautomata.runs import RunDir, atomic_write_text

__all__ = ["MAX_ROWS", "write_measures_report", "figure_files", "metric_table_rows", "value_html"]

#: metrics.jsonl rows shown at most (evenly thinned, first and last kept)
MAX_ROWS = 200
#: significant digits of numbers in the summary tables
DIGITS = 6
#: list items shown inline before the rest is counted
MAX_LIST = 24
#: characters of a summary file shown folded before it is cut
MAX_FILE_CHARS = 100_000
#: the summary files a measure-style run may hold, shown as written
SUMMARY_FILES = ("summary.json", "theory.json")

_EXTRA_CSS = """
table.values{border-collapse:collapse;font-size:.85rem;font-variant-numeric:tabular-nums}
table.values td,table.values th{padding:.12rem .6rem .12rem 0;text-align:left;vertical-align:top;border-bottom:1px solid #eee}
table.values table.values{font-size:.8rem}
#metrics-table{border-collapse:collapse;font-size:.75rem;font-variant-numeric:tabular-nums}
#metrics-table th,#metrics-table td{padding:.1rem .45rem;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
#metrics-table th{position:sticky;top:0;background:#f3f3f3}
.failed{color:#b03a2e;font-weight:bold}
figure{margin:1rem 0} figcaption{color:#555;font-size:.85rem}
"""


# ----------------------------------------------------------------------------------- values
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_html(value: Any) -> str:
    """A summary value as HTML: numbers to :data:`DIGITS` significant digits, a mapping as a nested
    table (a mapping of mappings with the same keys as one table with those columns), a list of
    numbers or strings inline (the first :data:`MAX_LIST`, then a count), anything else escaped."""
    if isinstance(value, Mapping):
        return _mapping_html(value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            return _records_html([(str(i), v) for i, v in enumerate(value)])
        shown = ", ".join(value_html(v) for v in value[:MAX_LIST])
        more = f", … ({len(value):,} values)" if len(value) > MAX_LIST else ""
        return f"[{shown}{more}]"
    return fmt(value, DIGITS)


def _mapping_html(mapping: Mapping[str, Any]) -> str:
    values = list(mapping.values())
    if values and all(isinstance(v, Mapping) for v in values) and len({tuple(v) for v in values}) == 1:
        return _records_html(list(mapping.items()))
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{value_html(v)}</td></tr>" for k, v in mapping.items())
    return f'<table class="values">{rows}</table>'


def _records_html(records: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    columns = list(records[0][1])
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"
    rows = "".join("<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{value_html(r.get(c))}</td>" for c in columns)
                   + "</tr>" for name, r in records)
    return f'<table class="values">{head}{rows}</table>'


# ---------------------------------------------------------------------------------- figures
def figure_files(run_dir: str | Path) -> list[Path]:
    """The run's figures, one file per figure: ``RUN/figures/NAME.svg`` where it exists, else
    ``NAME.png``; sorted by name."""
    folder = Path(run_dir) / "figures"
    if not folder.is_dir():
        return []
    stems: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in (".svg", ".png"):
            if path.stem not in stems or path.suffix == ".svg":
                stems[path.stem] = path
    return [stems[s] for s in sorted(stems)]


def _figure_html(path: Path) -> str:
    if path.suffix == ".svg":
        content = clean_svg(path.read_text(encoding="utf-8"))
    else:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        content = f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
    return (f'<figure class="figure" data-file="{html.escape(path.name)}">{content}'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


# ---------------------------------------------------------------------------------- metrics
def metric_table_rows(records: Sequence[Mapping[str, Any]], max_rows: int = MAX_ROWS) -> tuple[list[str], list[dict]]:
    """The metrics table: its columns (``step``, then every key with a number in some row, in
    first-seen order) and the rows shown (evenly spaced, first and last kept, at most ``max_rows``).

    Examples
    --------
    >>> cols, rows = metric_table_rows([{"step": s, "loss": 1 / (s + 1), "by_pos": [1, 2]} for s in range(10)], 4)
    >>> cols, [r["step"] for r in rows]
    (['step', 'loss'], [0, 3, 6, 9])
    """
    rows = [r for r in records if _number(r.get("step"))]
    columns = ["step"] + list(dict.fromkeys(k for r in rows for k, v in r.items() if k != "step" and _number(v)))
    if len(rows) > max_rows:
        n = len(rows)
        keep = sorted({round(i * (n - 1) / (max_rows - 1)) for i in range(max_rows)})
        rows = [rows[i] for i in keep]
    return columns, rows


def _metrics_html(run: RunDir) -> str:
    records = run.read_metrics()
    columns, rows = metric_table_rows(records)
    if not rows:
        return "<p>metrics.jsonl holds no rows.</p>"
    total = sum(1 for r in records if _number(r.get("step")))
    note = (f"all {total:,} rows" if len(rows) == total
            else f"{len(rows):,} of {total:,} rows, evenly spaced (first and last kept)")
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c), 4)}</td>" for c in columns) + "</tr>" for r in rows)
    return (f'<p class="sub" id="metrics-note">metrics.jsonl: {note}; keys holding lists (e.g. per position) '
            f'are left out.</p><div class="tablewrap"><table id="metrics-table">{head}{body}</table></div>')


# ------------------------------------------------------------------------------------ page
def _summary_files_html(run: RunDir) -> str:
    parts = []
    for name in SUMMARY_FILES:
        path = run.root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            text = json.dumps(json.loads(text), indent=1)
        except json.JSONDecodeError:
            pass
        cut = f"\n… ({len(text):,} characters; the rest is in {name})" if len(text) > MAX_FILE_CHARS else ""
        shown = html.escape(text[:MAX_FILE_CHARS] + cut)
        parts.append(f"<details><summary>{html.escape(name)}</summary><pre>{shown}</pre></details>")
    return "".join(parts)


def _summary_of(kind, run: RunDir, manifest: Mapping[str, Any]) -> dict | None:
    """The kind's summary; None for a failed run without one; a one-line CheckpointError for an
    unfinished run."""
    status = manifest.get("status")
    if status not in ("complete", "failed"):
        raise CheckpointError(f"{run.root} is not finished (status {status!r}); rerun `rnnautomata run` on its study "
                              f"with --out {run.root} to complete it, then `rnnautomata report {run.root}`")
    try:
        return kind.summarise(run.root)
    except CheckpointError as err:
        if status == "failed":
            return None
        raise CheckpointError(f"{run.root} has no summary ({err}); rerun `rnnautomata run` on its study "
                              f"with --out {run.root} to complete it") from None


def write_measures_report(run_dir: str | Path, kind, *, extra: Mapping[str, Any] | None = None,
                          out: str | Path | None = None) -> Path:
    """Write the self-contained HTML page of a measure-style run.

    Parameters
    ----------
    run_dir : path
        A finished (or failed) run folder of ``kind``.
    kind : StudyKind
        The run's kind; its ``summarise(run_dir)`` gives the summary table.
    extra : mapping, optional
        More tables, ``{title: value}``, each drawn by :func:`value_html` under the summary.
    out : path, optional
        Where to write (default ``RUN/report.html``).

    Returns
    -------
    Path
        The page written.

    Raises
    ------
    CheckpointError
        If the folder is not a run, or the run has not finished (nothing is written).
    """
    run = RunDir(Path(run_dir))
    manifest = run.read_manifest()
    summary = _summary_of(kind, run, manifest)
    name = str(manifest.get("name") or run.root.name)
    study_text = run.study_path.read_text(encoding="utf-8") if run.study_path.is_file() else "(no study.toml)"
    status, steps = manifest.get("status"), run.steps()
    kept = f"its checkpoints up to step {steps[-1]:,} are kept" if steps else "no checkpoint was kept"
    why = html.escape(str(manifest.get("error") or "no reason recorded"))
    status_html = (f'<p class="failed" id="status">This run failed: {why} ({kept}).</p>' if status == "failed"
                   else f'<p id="status">status: {html.escape(str(status))}</p>')
    if summary is None:
        summary_html = "<p>No summary: the run failed before it could be summarised.</p>"
    else:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{value_html(v)}</td></tr>" for k, v in summary.items())
        summary_html = f'<table class="values" id="summary">{rows}</table>'
    extras = "".join(f"<h2>{html.escape(title)}</h2>{value_html(value)}" for title, value in (extra or {}).items())
    figures = figure_files(run.root)
    figures_html = "".join(_figure_html(p) for p in figures) or "<p>No figures in figures/.</p>"

    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(name)} · rnnautomata report</title>
<link rel="icon" href="data:,">
<style>{CSS}{_EXTRA_CSS}</style></head>
<body><main>
<h1>{html.escape(name)}</h1>
<p class="sub">kind {html.escape(str(getattr(kind, "name", "")))} · rnnautomata {html.escape(__version__)} report ·
run written by version {fmt(manifest.get("package_version"))} · {len(steps)} checkpoints</p>
{status_html}
<details><summary>Study settings (study.toml)</summary><pre>{html.escape(study_text)}</pre></details>

<h2>Summary</h2>
{summary_html}
{extras}

<h2>Figures</h2>
{figures_html}

<h2>Metrics over training</h2>
{_metrics_html(run)}

<h2>Summary files</h2>
{_summary_files_html(run) or "<p>none</p>"}
</main></body></html>
"""
    path = Path(out) if out is not None else run.root / "report.html"
    atomic_write_text(path, body)
    return path

"""report.html of the measure-style kinds (rnnautomata.measures_report), on tiny real runs made by
``rnnautomata run``: the page is read back with html.parser and checked against the run's own
files (summary.json, the kind's summarise, figures/, metrics.jsonl, baselines.json)."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnautomata.cli import main
from rnnautomata.measures_report import MAX_ROWS, metric_table_rows
from rnnautomata.runs import RunDir
from rnnautomata.studies import get_kind
from tests.test_transient_ridge import TINY as TINY_TR

TRANSIENT_RIDGE = TINY_TR.format(m=2, epochs=20).replace('name = "tiny"', 'name = "tiny_tr"')
CLASSIFICATION = """kind = "icl_classification"
name = "tiny_cls"
[data]
x_dim = 6
n_items = 40
n_context = 5
n_test = 100
[model]
mlp_width = 16
[train]
lr = 0.05
batch_size = 16
epochs = 40
eval_every = 10
checkpoint_every = 20
"""
GROKKING = """kind = "grokking"
name = "tiny_grok"
[data]
modulus = 7
train_fraction = 0.5
[model]
embed_dim = 4
hidden_size = 8
[train]
epochs = 20
eval_every = 5
checkpoint_every = 10
lr = 0.01
"""
STUDIES = {"transient_ridge": TRANSIENT_RIDGE, "icl_classification": CLASSIFICATION, "grokking": GROKKING}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("measures_report")
    out = {}
    for kind, text in STUDIES.items():
        (tmp / f"{kind}.toml").write_text(text)
        assert main(["--threads", "1", "run", str(tmp / f"{kind}.toml"), "--out", str(tmp / kind), "--quiet"]) == 0
        out[kind] = tmp / kind
    return out


class Page(HTMLParser):
    """The parts of a report page the tests read: the summary table's top-level rows, the metrics
    table, the figures and any <script> element."""

    def __init__(self, text: str):
        super().__init__()
        self.summary: dict[str, str] = {}
        self.metrics: list[list[str]] = []
        self.figures: list[dict] = []
        self.scripts = 0
        self.status = ""
        self._table: list[str | None] = []   # id of each open table
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._figure: dict | None = None
        self._in_status = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self._table.append(a.get("id"))
        if tag == "tr" and self._table and self._table[-1] in ("summary", "metrics-table") and len(self._table) == 1:
            self._row = []
        if tag in ("td", "th") and self._row is not None and len(self._table) == 1:
            self._cell = []
        if tag == "figure":
            self._figure = {"file": a.get("data-file"), "svg": False, "png": False}
        if self._figure is not None and tag == "svg":
            self._figure["svg"] = True
        if self._figure is not None and tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,"):
            self._figure["png"] = True
        if tag == "p" and a.get("id") == "status":
            self._in_status = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and len(self._table) == 1:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None and len(self._table) == 1:
            if self._table[-1] == "summary":
                self.summary[self._row[0]] = self._row[1]
            else:
                self.metrics.append(self._row)
            self._row = None
        if tag == "table":
            self._table.pop()
        if tag == "figure":
            self.figures.append(self._figure)
            self._figure = None
        if tag == "p":
            self._in_status = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_status:
            self.status += data


def shown_equals(text: str, value) -> bool:
    """The page's text for a summary value (6 significant digits) against the value itself."""
    if value is None:
        return text == "–"
    if isinstance(value, bool):
        return text == ("yes" if value else "no")
    if isinstance(value, (int, float)):
        return float(text) == pytest.approx(value, rel=1e-5, abs=1e-12)
    return text == str(value)


def _report(run: Path) -> Page:
    assert main(["report", str(run)]) == 0
    return Page((run / "report.html").read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", list(STUDIES))
def test_report_shows_the_summary_figures_and_metrics_of_the_run(runs, kind):
    run = runs[kind]
    assert (run / "report.html").is_file()            # `rnnautomata run` wrote it (rendering)
    (run / "report.html").unlink()
    page = _report(run)                                # `rnnautomata report` writes it again
    summary = get_kind(kind).summarise(run)
    assert set(page.summary) == set(summary)
    for key, value in summary.items():
        assert shown_equals(page.summary[key], value), (key, page.summary[key], value)
    if kind == "transient_ridge":                      # its summary.json is the summary row itself
        assert json.loads((run / "summary.json").read_text()) == pytest.approx(summary)
    stems = {p.stem for p in (run / "figures").iterdir() if p.suffix in (".svg", ".png")}
    assert len(page.figures) == len(stems) > 0
    assert all(f["svg"] or f["png"] for f in page.figures)
    assert {Path(f["file"]).stem for f in page.figures} == stems
    rows = RunDir(run).read_metrics()
    head, *body = page.metrics
    numeric = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert head[0] == "step" and set(head) == numeric
    assert [int(r[0].replace(",", "")) for r in body] == [r["step"] for r in rows]
    assert page.scripts == 0 and page.status.strip() == "status: complete"


def test_transient_ridge_report_shows_the_baseline_losses(runs):
    run = runs["transient_ridge"]
    text = _report_text(run)
    base = json.loads((run / "baselines.json").read_text())
    assert "Baseline losses" in text
    for name, value in base.items():
        assert f"<td>{name}</td><td>{value['mean']:.6g}</td>" in text


def test_report_escapes_what_the_run_holds(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["grokking"], run)
    RunDir(run).write_manifest(name="<script>alert(1)</script>")
    study = run / "study.toml"
    study.write_text(study.read_text() + "# </pre><script>alert(2)</script>\n")
    text = _report_text(run)
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;/pre&gt;&lt;script&gt;alert(2)" in text
    assert Page(text).scripts == 0


def _report_text(run: Path) -> str:
    assert main(["report", str(run)]) == 0
    return (run / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("how", ["running", "no summary"])
def test_an_unfinished_run_gets_one_line_and_no_page(runs, tmp_path, capsys, how):
    run = tmp_path / "run"
    shutil.copytree(runs["grokking"], run)
    (run / "report.html").unlink()
    if how == "running":
        RunDir(run).write_manifest(status="running")
    else:
        (run / "summary.json").unlink()
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run}") and "rnnautomata run" in err[0]
    assert not (run / "report.html").exists()


def test_a_failed_run_says_so_and_why(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["icl_classification"], run)
    RunDir(run).write_manifest(status="failed", error="non-finite loss at step 30")
    page = Page(_report_text(run))
    assert "This run failed: non-finite loss at step 30" in page.status
    assert f"checkpoints up to step {RunDir(run).steps()[-1]:,} are kept" in page.status
    assert set(page.summary) == set(get_kind("icl_classification").summarise(run))   # its metrics still summarise


def test_no_render_writes_no_report(tmp_path):
    (tmp_path / "g.toml").write_text(GROKKING)
    assert main(["--threads", "1", "run", str(tmp_path / "g.toml"), "--out", str(tmp_path / "g"), "--quiet",
                 "--no-render"]) == 0
    assert (tmp_path / "g" / "summary.json").is_file() and not (tmp_path / "g" / "report.html").exists()


def test_metric_rows_are_thinned_evenly_keeping_first_and_last():
    records = [{"step": 10 * i, "loss": 1.0 / (i + 1), "flag": True, "per": [1, 2]} for i in range(1001)]
    columns, rows = metric_table_rows(records)
    assert columns == ["step", "loss"]                 # booleans and lists left out
    steps = [r["step"] for r in rows]
    assert len(steps) == MAX_ROWS and steps[0] == 0 and steps[-1] == 10_000
    gaps = {b - a for a, b in zip(steps, steps[1:])}
    assert gaps <= {50, 60}                            # 1000 / 199 index steps: 5 or 6 rows apart
    assert metric_table_rows(records[:7])[1] == records[:7]


def test_the_automata_report_is_still_the_automata_page(tmp_path):
    """`rnnautomata report` on an automata run still writes report.py's page, byte for byte."""
    import matplotlib
    from fixtures_run import write_synthetic_run

    from rnnautomata.report import write_report

    run = write_synthetic_run(tmp_path / "run", n_checkpoints=6, depth=3)
    with matplotlib.rc_context({"svg.hashsalt": "fixed"}):   # matplotlib's clip-path ids, else random
        assert main(["report", str(run)]) == 0
        direct = write_report(run, progress=False, out=tmp_path / "direct.html")
    assert (run / "report.html").read_bytes() == direct.read_bytes()
    assert 'id="ckpt-slider"' in direct.read_text()

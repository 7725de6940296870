"""report: one self-contained report.html; drawings packed, deduplicated and small enough."""

from __future__ import annotations

import base64
import gzip
import html
import json
import re

import pytest
from fixtures_run import write_synthetic_run

from rnnautomata import render
from rnnautomata.errors import CheckpointError
from rnnautomata.report import write_report

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def embedded(text: str, script_id: str) -> str:
    match = re.search(rf'<script[^>]*id="{script_id}"[^>]*>(.*?)</script>', text, re.S)
    assert match, script_id
    return match.group(1)


def drawings(text: str) -> list[str]:
    return json.loads(gzip.decompress(base64.b64decode(embedded(text, "drawings-data").strip())))


@pytest.fixture(scope="module")
def report_40(tmp_path_factory):
    run = write_synthetic_run(tmp_path_factory.mktemp("report") / "run", n_checkpoints=40, depth=5)
    return run, write_report(run, progress=False)


def test_report_is_self_contained(report_40):
    run, path = report_40
    assert path == run / "report.html"
    text = path.read_text(encoding="utf-8")
    assert EXTERNAL.search(text) is None
    assert "<link rel=\"stylesheet\"" not in text and "@import" not in text and "url(http" not in text
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text  # inline SVGs are cleaned
    for section in ("Study settings", "Timeline", "The machine at each checkpoint", "Final machine",
                    "Merge history", "Fidelity and generalisation"):
        assert section in text
    assert html.escape('name = "synthetic"') in text  # the study.toml text


def test_report_slider_data_matches_the_run(report_40):
    run, path = report_40
    text = path.read_text(encoding="utf-8")
    meta = json.loads(embedded(text, "ckpt-data"))
    dyn = json.loads((run / "dynamics.json").read_text())
    assert [m["step"] for m in meta] == [c["step"] for c in dyn["checkpoints"]]
    figures = drawings(text)
    if render.graphviz_binary() is not None:
        assert all(f.startswith("<svg") for f in figures)
    used = {m["d"] for m in meta}
    assert used == set(range(len(figures)))  # every stored drawing is used, none missing
    assert len(figures) < len(meta)  # identical machines (initial and finite phases) stored once
    assert len(re.findall(r'<tr class="(?:finite|open)" data-index=', text)) == len(meta)
    big = [m for m in meta if m["n_states"] > 80]
    assert all("minimised" in m["note"] for m in big)


@pytest.mark.skipif(render.graphviz_binary() is None, reason="graphviz `dot` not installed")
def test_report_of_200_checkpoints_stays_small(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=200, depth=7)  # peak 255 states
    path = write_report(run, progress=False)
    size = path.stat().st_size
    print(f"report.html for 200 checkpoints: {size / 1e6:.2f} MB")
    assert size < 3_000_000


def viewbox_size(svg: str) -> tuple[float, float]:
    """Width and height of an SVG's viewBox (pt for graphviz's SVGs)."""
    _, _, width, height = (float(v) for v in re.search(r'viewBox="([^"]+)"', svg).group(1).split())
    return width, height


@pytest.mark.skipif(render.graphviz_binary() is None, reason="graphviz `dot` not installed")
def test_each_checkpoint_drawing_is_sized_to_its_own_machine(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=12, depth=7)  # 2 states, later 129
    text = write_report(run, max_states=300, progress=False).read_text(encoding="utf-8")
    meta = json.loads(embedded(text, "ckpt-data"))
    figures = drawings(text)
    sizes = [viewbox_size(figures[m["d"]]) for m in meta]
    largest = max(sizes, key=lambda wh: wh[0] * wh[1])
    first = sizes[0]
    assert meta[0]["n_states"] == 2 and max(m["n_states"] for m in meta) >= 129
    # pinned positions come from one tree for all checkpoints; the 2-state machine used to sit on
    # a canvas as tall as a quarter of that tree (9.8 in here); now its empty space is closed up
    assert first[1] < 3 * 72, first  # two states: under 3 inches tall
    assert first[1] < 0.1 * largest[1] and first[0] * first[1] < 0.03 * largest[0] * largest[1]
    svg = figures[meta[0]["d"]]
    width, height = (float(re.search(rf'{k}="([\d.]+)pt"', svg).group(1)) for k in ("width", "height"))
    assert (width, height) == pytest.approx(first, abs=1)  # the canvas is the viewBox, at 1 pt per unit


def test_report_without_graphviz_still_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(render.graphviz, "graphviz_binary", lambda: None)
    monkeypatch.setattr(render.graphviz, "_notice_given", False)
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=8, depth=3)
    text = write_report(run, progress=False).read_text(encoding="utf-8")
    assert all(f.startswith('<pre class="dot">') for f in drawings(text))


def test_report_needs_dynamics(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=4, depth=2)
    (run / "dynamics.json").unlink()
    with pytest.raises(CheckpointError, match="rnnautomata track"):
        write_report(run)


def test_report_states_the_verdicts_across_checkpoints(tmp_path):
    from rnnautomata.config import study_from_dict
    from rnnautomata.dynamics import track
    from rnnautomata.train import train

    from conftest import tiny_raw

    run = tmp_path / "run"
    train(study_from_dict(tiny_raw()), run, progress=False)
    dyn = track(run, progress=False)
    text = write_report(run, progress=False).read_text(encoding="utf-8")
    v = dyn["verdicts"]
    # the verdict rows restate what dynamics.json holds (counted from its checkpoints, independently)
    n_eq = sum(bool(c["robust"]["equivalent_to_truth"]) for c in dyn["checkpoints"])
    assert v["n_equivalent"] == n_eq
    assert "ε-free machine equivalent to the truth at" in text and "best checkpoint" in text
    assert f"step {v['best_step']:,}: " in text
    assert (f"({n_eq} of {len(dyn['checkpoints'])} checkpoints)" in text or n_eq <= 1)
    assert "ε-free states" in text  # the per-checkpoint table column
    assert "consistent merging" in text  # the final ε-free machine is drawn (its title)

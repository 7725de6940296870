"""Sweeps of a study kind other than automata (here icl_classification, the smallest): grid keys
checked by the kind before anything starts, one run per seed with its seed in ``train.seed``, the
per-point medians / fractions against each run's own metrics.jsonl, the kind's sweep figures,
idempotent reruns.

Integration tier: a tiny sweep of 4 runs of ~1-2 s each (module fixture).
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from rnnautomata import sweep as sweep_mod
from rnnautomata.cli import main
from rnnautomata.engines import LocalEngine
from rnnautomata.errors import ConfigError
from rnnautomata.runs import RunDir
from rnnautomata.sweep import plan_sweep, run_sweep, summary_spread, summary_table

GRID = {"data.n_items": [20, 80]}
SEEDS = [0, 1]


def tiny_cls() -> dict:
    return {"kind": "icl_classification", "name": "tiny_cls",
            "data": {"x_dim": 6, "n_items": 40, "n_context": 5, "n_test": 100},
            "model": {"mlp_width": 16},
            "train": {"lr": 0.05, "batch_size": 16, "epochs": 40, "eval_every": 10, "checkpoint_every": 20}}


def _toml(raw: dict) -> str:
    from rnnautomata.config import dict_to_toml

    return dict_to_toml(raw)


@pytest.mark.parametrize("grid, words", [
    ({"data.n_itemz": [20]}, r"--grid data.n_itemz=20: .*data.n_itemz"),
    ({"data.n_items": [20, 3]}, r"--grid data.n_items=3: .*data.n_items"),       # K must exceed N = 5
    ({"train.lr": [0.1, -1]}, r"--grid train.lr=-1: train.lr must be positive"),
    ({"train.seed": [1, 2]}, r"--grid train.seed: .*set by the sweep"),
    ({"data.n_items": [6], "data.n_context": [4, 8]},                              # each fine alone, not together
     r"grid point data.n_items=6,data.n_context=8: .*data.n_items"),
])
def test_grid_values_are_checked_by_the_kind_before_anything_starts(grid, words):
    with pytest.raises(ConfigError, match=words) as err:
        plan_sweep(tiny_cls(), grid, SEEDS)
    assert "\n" not in str(err.value)


def test_an_unknown_kind_is_a_one_line_error():
    with pytest.raises(ConfigError, match="kind = 'nope' is not a known study kind.*icl_classification"):
        plan_sweep({**tiny_cls(), "kind": "nope"}, GRID, SEEDS)


def test_one_run_per_seed_with_the_seed_in_the_kinds_seed_field():
    runs = plan_sweep(tiny_cls(), GRID, SEEDS)
    assert [r["dir"] for r in runs] == ["data.n_items=20/seed_0000", "data.n_items=20/seed_0001",
                                        "data.n_items=80/seed_0000", "data.n_items=80/seed_0001"]
    assert [(r["raw"]["train"]["seed"], r["raw"]["data"]["n_items"], r["batched"]) for r in runs] == [
        (0, 20, False), (1, 20, False), (0, 80, False), (1, 80, False)]


def test_cli_errors_for_an_icl_sweep_write_nothing(tmp_path, capsys):
    study = tmp_path / "cls.toml"
    study.write_text(_toml(tiny_cls()))
    out = tmp_path / "out"
    for extra in (["--grid", "data.n_itemz=20"], ["--grid", "data.n_items=20,3"], ["--grid", "train.seed=1,2"]):
        assert main(["sweep", str(study), "--out", str(out), "--seeds", "0-1", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and extra[1].split("=")[0] in err, err
        assert not out.exists()


def test_summary_spread_of_mixed_keys():
    rows = [{"seed": 0, "dir": ".", "a": 1.0, "ok": True, "t": None},
            {"seed": 1, "dir": ".", "a": 3.0, "ok": False, "t": 10},
            {"seed": 2, "dir": ".", "a": 2.0, "ok": True, "t": 30}]
    got = summary_spread(rows)
    assert got["a_median"] == 2.0 and got["a_q25"] == 1.5 and got["a_q75"] == 2.5 and "a_n" not in got
    assert got["fraction_ok"] == pytest.approx(2 / 3)
    assert got["t_median"] == 20.0 and got["t_n"] == 2
    assert not any(k.startswith(("seed", "dir")) for k in got)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls_sweep") / "s"
    sweep = run_sweep(tiny_cls(), GRID, SEEDS, out, engine=LocalEngine(1), progress=False)
    return out, sweep


def _own(run_dir: Path) -> dict:
    """A run's measures read here straight from its metrics.jsonl (half-way level 0.75 for 2 labels)."""
    rows = RunDir(run_dir).read_metrics()
    icl = [r["acc/icl"] for r in rows]
    return {"acc_icl": icl[-1], "acc_iwl": rows[-1]["acc/iwl"], "peak_icl": max(icl),
            "icl_appeared": max(icl) >= 0.75}


def test_icl_sweep_rows_are_medians_of_each_runs_own_metrics(swept):
    out, sweep = swept
    assert [r["status"] for r in sweep["runs"]] == ["complete"] * 4
    with open(out / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["data.n_items"]) for r in rows] == GRID["data.n_items"]
    for row in rows:
        own = [_own(out / f"data.n_items={row['data.n_items']}" / f"seed_{s:04d}") for s in SEEDS]
        for key in ("acc_icl", "acc_iwl", "peak_icl"):
            assert float(row[f"{key}_median"]) == pytest.approx(statistics.median(o[key] for o in own)), key
        assert float(row["fraction_icl_appeared"]) == pytest.approx(statistics.mean(o["icl_appeared"] for o in own))
        assert int(row["n_done"]) == 2 and row["status"] == "complete"
    for run in sweep["runs"]:  # each run: an ordinary run folder of its kind, with its own seed
        manifest = RunDir(out / run["dir"]).read_manifest()
        assert manifest["kind"] == "icl_classification" and manifest["status"] == "complete"
        assert f"seed = {run['seeds'][0]}" in (out / run["dir"] / "study.toml").read_text()


def test_icl_sweep_figures_page_and_table(swept):
    out, sweep = swept
    for name in ("phase_diagram.png", "phase_diagram.svg", "icl_threshold.png", "icl_threshold.svg"):
        assert (out / "figures" / name).stat().st_size > 1000, name
    threshold = json.loads((out / "threshold.json").read_text())
    assert len(threshold["runs"]) == 4 and threshold["paper_slope"] == pytest.approx(1 / 0.7)
    page = (out / "report.html").read_text()
    assert page.count("<tr>") == 1 + len(GRID["data.n_items"]) and page.count("<svg") >= 2
    for run in sweep["runs"]:  # each run's own report.html (measures_report), linked from the sweep page
        assert (out / run["dir"] / "report.html").is_file() and f'href="{run["dir"]}/report.html"' in page
    table = summary_table(sweep)
    assert "acc_icl" in table and table.count("complete") == 2


def test_icl_sweep_rerun_is_a_no_op(swept, monkeypatch):
    out, sweep = swept
    monkeypatch.setattr(sweep_mod, "_run_job", lambda job: pytest.fail(f"reran {job['out']}"))
    assert run_sweep(tiny_cls(), GRID, SEEDS, out, engine=LocalEngine(1), progress=False) == sweep


def test_a_deleted_run_is_redone_alone(swept, tmp_path, monkeypatch):
    import shutil

    src, sweep = swept
    out = tmp_path / "s"
    shutil.copytree(src, out)
    shutil.rmtree(out / sweep["runs"][1]["dir"])
    done = []
    real = sweep_mod._run_job

    def counted(job):
        done.append(job["out"])
        return real(job)

    monkeypatch.setattr(sweep_mod, "_run_job", counted)
    again = run_sweep(tiny_cls(), GRID, SEEDS, out, engine=LocalEngine(1), progress=False, render=False)
    assert done == [str(out / sweep["runs"][1]["dir"])]
    assert [r["summary"] for r in again["runs"]] == [r["summary"] for r in sweep["runs"]]  # deterministic

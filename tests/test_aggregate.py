"""Aggregates across seeds: medians and quartiles checked against each seed's own dynamics.json."""

import json

import numpy as np
import pytest

from rnnautomata.aggregate import aggregate_seeds, spread
from rnnautomata.batched import seed_dir, train_seeds
from rnnautomata.config import study_from_dict
from rnnautomata.dynamics import read_dynamics
from rnnautomata.errors import CheckpointError
from rnnautomata.train import train

from conftest import tiny_raw

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def seeds_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("agg") / "multi"
    study = study_from_dict(tiny_raw(seeds=SEEDS, task={"test_lengths": [20]}))
    train_seeds(study, out, progress=False)
    return out


def test_spread_known_answers():
    assert spread([3, 1, 2]) == {"median": 2.0, "q25": 1.5, "q75": 2.5, "n": 3}
    assert spread([None, float("nan")]) is None
    assert spread([5]) == {"median": 5.0, "q25": 5.0, "q75": 5.0, "n": 1}


def test_aggregate_matches_per_seed_dynamics(seeds_dir):
    agg = aggregate_seeds(seeds_dir, progress=False, jobs=1)
    assert agg["format"] == "rnnautomata.aggregate/1" and agg["seeds"] == SEEDS
    dyns = [read_dynamics(seed_dir(seeds_dir, s)) for s in SEEDS]  # written by the tracking
    assert [c["step"] for c in agg["checkpoints"]] == [c["step"] for c in dyns[0]["checkpoints"]]
    for j, c in enumerate(agg["checkpoints"]):
        states = sorted(d["checkpoints"][j]["n_states"] for d in dyns)
        assert c["n_states"]["median"] == states[1]  # three seeds: the middle one
        assert c["n_states"]["q25"] == (states[0] + states[1]) / 2 and c["n_states"]["q75"] == (states[1] + states[2]) / 2
        mins = [d["checkpoints"][j]["n_states_min"] for d in dyns]
        assert c["n_states_min"]["median"] == float(np.median(mins))
        assert c["fraction_finite"] == pytest.approx(np.mean([d["checkpoints"][j]["finite"] for d in dyns]))
        assert c["n_seeds"] == 3
    ff = [d["finite_from_step"] for d in dyns]
    assert agg["finite_from_step"]["per_seed"] == ff
    assert agg["finite_from_step"]["n_never"] == sum(f is None for f in ff)
    became = [f for f in ff if f is not None]
    assert agg["finite_from_step"]["median"] == (float(np.median(became)) if became else None)
    peaks = agg["peak"]["per_seed"]
    for s, d, p in zip(SEEDS, dyns, peaks):
        counts = [c["n_states"] for c in d["checkpoints"]]
        first_top = counts.index(max(counts))
        assert p == {"seed": s, "n_states": max(counts), "step": d["checkpoints"][first_top]["step"],
                     "n_states_min": d["checkpoints"][first_top]["n_states_min"]}
    assert agg["peak"]["n_states"]["median"] == float(np.median([p["n_states"] for p in peaks]))
    finals = agg["final"]["per_seed"]
    assert [f["seed"] for f in finals] == SEEDS
    assert all("20" in f["acc_by_length"] for f in finals)
    # verdicts across seeds, counted here from each seed's per-checkpoint ε-free machines
    ever = [next((c["step"] for c in d["checkpoints"] if c["robust"]["equivalent_to_truth"]), None) for d in dyns]
    v = agg["verdicts"]
    assert v["n_seeds"] == 3 and v["n_ever_equivalent"] == sum(e is not None for e in ever)
    assert v["n_final_equivalent"] == sum(bool(d["final"]["equivalent_to_truth"]) for d in dyns)
    assert [f["verdicts"]["first_equivalent_step"] for f in finals] == ever
    assert [f["epsilon_rule_equivalent"] for f in finals] == [d["final"]["epsilon_rule"]["equivalent_to_truth"] for d in dyns]
    assert json.loads((seeds_dir / "aggregate.json").read_text()) == json.loads(json.dumps(agg))
    for ext in ("png", "svg"):
        assert (seeds_dir / "figures" / f"seeds_timeline.{ext}").stat().st_size > 1000


def test_existing_dynamics_are_reused(seeds_dir):
    aggregate_seeds(seeds_dir, progress=False, jobs=1)
    stamps = [seed_dir(seeds_dir, s).joinpath("dynamics.json").stat().st_mtime_ns for s in SEEDS]
    aggregate_seeds(seeds_dir, progress=False, jobs=1)
    assert stamps == [seed_dir(seeds_dir, s).joinpath("dynamics.json").stat().st_mtime_ns for s in SEEDS]


def test_tracking_seeds_in_parallel_processes_gives_the_same_dynamics(seeds_dir):
    """jobs=2 tracks two seeds at a time in spawned worker processes: same files as one by one."""
    paths = [seed_dir(seeds_dir, s) / "dynamics.json" for s in SEEDS]

    def fresh(jobs):
        for p in paths:
            p.unlink(missing_ok=True)
        agg = aggregate_seeds(seeds_dir, progress=False, jobs=jobs)
        return agg, [json.loads(p.read_text()) for p in paths]

    serial, serial_dyns = fresh(1)
    parallel, parallel_dyns = fresh(2)
    assert parallel_dyns == serial_dyns
    assert parallel == serial


def test_single_run_is_refused(tmp_path):
    train(study_from_dict(tiny_raw(task={"test_lengths": [20]}, train={"epochs": 1})), tmp_path / "one", progress=False)
    with pytest.raises(CheckpointError, match="not a multi-seed folder"):
        aggregate_seeds(tmp_path / "one", progress=False)


def test_seeds_report_has_a_row_per_seed_with_the_aggregate_figures(seeds_dir):
    import re

    from rnnautomata.seeds_report import write_seeds_report

    agg = aggregate_seeds(seeds_dir, progress=False, jobs=1)
    page = write_seeds_report(seeds_dir).read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1])
    assert len(rows) == len(SEEDS)
    for row, final, peak in zip(rows, agg["final"]["per_seed"], agg["peak"]["per_seed"]):
        values = re.findall(r'data-v="([^"]*)"', row)
        assert values[0] == str(final["seed"])
        assert values[1] == str(peak["n_states"]) and values[5] == str(final["n_states"])
    n_eq = sum(bool(f["equivalent_to_truth"]) for f in agg["final"]["per_seed"])
    assert f"equivalent to the task's machine: {n_eq} of {len(SEEDS)}" in page
    assert "<svg" in page and "http" not in page.split("<svg")[0].replace("http://www.w3.org", "")


def test_cli_on_a_seeds_folder(seeds_dir, capsys):
    from rnnautomata.cli import main

    assert main(["report", str(seeds_dir)]) == 0
    assert (seeds_dir / "report.html").is_file()
    assert main(["extract", str(seeds_dir)]) == 2
    assert "holds many seeds; extract from one of them" in capsys.readouterr().err
    assert main(["extract", str(seed_dir(seeds_dir, SEEDS[0])), "--format", "dot"]) == 0

"""The public Run object, `rnnautomata steps`, --step @K and `track --out`: against what track wrote."""

from __future__ import annotations

import json

import pytest
import torch

from rnnautomata import Run
from rnnautomata.automata import Machine
from rnnautomata.cli import main
from rnnautomata.config import study_from_dict
from rnnautomata.dynamics import track
from rnnautomata.errors import CheckpointError
from rnnautomata.train import train

from conftest import tiny_raw


def same(a: Machine, b: Machine) -> bool:
    return a.to_json() == b.to_json()


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("runapi") / "run"
    train(study_from_dict(tiny_raw()), root, progress=False)
    dyn = track(root, progress=False)
    return root, dyn


def test_steps_by_step_last_and_index(tracked):
    root, dyn = tracked
    run = Run(root)
    steps = [c["step"] for c in dyn["checkpoints"]]
    assert run.steps == steps
    assert run.step("last") == run.step("@-1") == steps[-1] and run.step("@0") == steps[0]
    assert run.step("@2") == steps[2] and run.step(steps[3]) == steps[3]
    for bad in ("@99", "@x", "seven", 123456):
        with pytest.raises(CheckpointError):
            run.step(bad)


def test_stored_machines_and_re_extraction_without_writing(tracked, tmp_path):
    root, dyn = tracked
    run = Run(root)
    last = run.steps[-1]
    assert same(run.machine("last"), Machine.load(root / "automata" / "robust" / f"step_{last:06d}.json"))
    assert same(run.machine("last", method="epsilon"), Machine.load(root / "automata" / f"step_{last:06d}.json"))
    before = {p: p.read_bytes() for p in (root / "automata").rglob("*.json")}
    # other settings: extracted here, nothing written; equal to what track writes with them elsewhere
    other = track(root, epsilon=dyn["epsilon"] / 4, progress=False, out_dir=tmp_path / "other")
    m = run.machine(last, method="epsilon", epsilon=dyn["epsilon"] / 4)
    stored = Machine.load(tmp_path / "other" / "automata" / f"step_{last:06d}.json")
    assert same(m.replace(meta={}), stored.replace(meta={}))
    assert other["checkpoints"][-1]["n_states"] == m.n_states
    assert {p: p.read_bytes() for p in (root / "automata").rglob("*.json")} == before


def test_merges_between_checkpoints_match_the_dynamics(tracked):
    root, dyn = tracked
    run = Run(root)
    ck = dyn["checkpoints"]
    for a, b in zip(ck, ck[1:]):  # consecutive: exactly what track recorded
        assert run.merges(a["step"], b["step"]) == b["merged"]
    assert run.merges("@3", "@3") == []  # a checkpoint merges nothing into itself


def test_outputs_are_the_networks_step_by_step(tracked):
    root, _ = tracked
    run = Run(root)
    model = run.model("last")
    strings = ["0110", "1", "111010"]
    got = run.outputs(strings)
    for s, outs in zip(strings, got):  # brute force through the one-step API
        state = model.initial_state(1)
        want = []
        with torch.no_grad():
            for c in s:
                state = model.step(state, torch.tensor([int(c)]))
                want.append(run.task.outputs[int(model.readout(state).argmax(-1)[0])])
        assert outs == want
    assert run.outputs([[0, 1, 1, 0]]) == [got[0]]
    with pytest.raises(ValueError, match="outside the alphabet"):
        run.outputs(["012"])


def test_cli_steps_step_index_and_track_out(tracked, tmp_path, capsys):
    root, dyn = tracked
    assert main(["steps", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == [c["step"] for c in dyn["checkpoints"]]
    assert [r["n_states"] for r in rows] == [c["n_states"] for c in dyn["checkpoints"]]
    assert main(["steps", str(root)]) == 0 and "@0" in capsys.readouterr().out
    assert main(["extract", str(root), "--step", "@0", "--quiet"]) == 0
    by_index = capsys.readouterr().out
    assert main(["extract", str(root), "--step", str(rows[0]["step"]), "--quiet"]) == 0
    assert capsys.readouterr().out == by_index
    before = (root / "dynamics.json").read_bytes()
    assert main(["track", str(root), "--merger", "single_linkage", "--out", str(tmp_path / "sl"), "--quiet"]) == 0
    assert (root / "dynamics.json").read_bytes() == before  # the run's own dynamics untouched
    assert json.loads((tmp_path / "sl" / "dynamics.json").read_text())["merger"] == "single_linkage"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["track", str(root), "--out", str(tmp_path / "busy"), "--quiet"]) == 2
    assert "holds other files" in capsys.readouterr().err

import json

import numpy as np
import pytest

from rnnautomata.dynamics import finite_from, merge_events, phases, read_dynamics, successor_map, track
from rnnautomata.errors import CheckpointError
from rnnautomata.train import train


def test_successor_map_and_merge_events_by_hand():
    # 6 prefixes; previously in states 0,0,1,1,2,3; now states 0,0,0,0,1,1 (and a minority vote)
    prev = np.array([0, 0, 1, 1, 2, 3, 3])
    now = np.array([0, 0, 0, 0, 1, 1, 2])
    succ = successor_map(prev, now, 5)
    assert succ == [0, 0, 1, 1, -1]  # state 3: two prefixes, votes 1 and 2 tie -> smaller id
    assert merge_events(succ) == [{"from": [0, 1], "into": 0}, {"from": [2, 3], "into": 1}]


def test_finite_from_is_the_last_return_to_finite():
    steps = [0, 10, 20, 30, 40, 50]
    assert finite_from(steps, [True, False, True, False, True, True]) == 40
    assert finite_from(steps, [True] * 6) == 0
    assert finite_from(steps, [True, True, False, False, False, False]) is None


def test_phases_initial_tree_merging_finite():
    steps = [0, 1, 2, 3, 4, 5, 6]
    n = [3, 3, 50, 300, 120, 2, 2]
    fin = [True, True, False, False, False, True, True]
    assert phases(steps, n, fin) == [
        {"name": "initial", "start_step": 0, "end_step": 1},
        {"name": "tree", "start_step": 2, "end_step": 3},
        {"name": "merging", "start_step": 3, "end_step": 5},
        {"name": "finite", "start_step": 5, "end_step": 6},
    ]
    # never closes: tree then merging without a finite phase
    p = phases(steps[:5], n[:5], fin[:5])
    assert [x["name"] for x in p] == ["initial", "tree", "merging"]
    assert phases([0, 1], [2, 2], [True, True]) == [{"name": "finite", "start_step": 0, "end_step": 1}]
    # a large init: every prefix distinct from step 0 and never merging -> one tree phase, no "merging"
    assert phases([0, 1, 2], [2047, 2047, 2042], [False, False, False]) == [
        {"name": "tree", "start_step": 0, "end_step": 2}
    ]


def test_track_on_a_tiny_run(tmp_path, tiny_study):
    train(tiny_study, tmp_path / "r", progress=False)
    dyn = track(tmp_path / "r", progress=False)
    assert dyn == read_dynamics(tmp_path / "r")
    ck = dyn["checkpoints"]
    assert [c["step"] for c in ck] == sorted(c["step"] for c in ck)
    assert ck[0]["successor"] is None
    for prev, cur in zip(ck, ck[1:]):
        assert len(cur["successor"]) == prev["n_states"]
        assert all(0 <= s < cur["n_states"] for s in cur["successor"])
    for c in ck:
        assert 1 <= c["n_states_min"] <= c["n_states"] <= 31  # depth-4 binary tree has 31 prefixes
        machine = json.loads((tmp_path / "r" / "automata" / f"step_{c['step']:06d}.json").read_text())
        assert machine["format"] == "rnnautomata.machine/1"
        assert len(machine["transitions"]) == c["n_states"]
        assert machine["meta"]["finite"] == c["finite"]
    # an extracted machine is finite exactly when it has no open transition
    from rnnautomata.automata import Machine

    for c in ck:
        m = Machine.load(tmp_path / "r" / "automata" / f"step_{c['step']:06d}.json")
        assert m.is_complete() == c["finite"]
    assert dyn["final"]["truth_states"] == 2


def test_track_refuses_missing_runs(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        track(tmp_path / "nope", progress=False)
    with pytest.raises(CheckpointError, match="run `rnnautomata track"):
        read_dynamics(tmp_path)


def test_track_with_nerode_measures(tmp_path, tiny_study):
    train(tiny_study, tmp_path / "r", progress=False)
    dyn = track(tmp_path / "r", progress=False, nerode=True, write=False)
    for c in dyn["checkpoints"]:
        ner = c["nerode"]
        # 31 prefixes of a depth-4 binary tree: C(31, 2) = 465 pairs
        assert ner["n_pairs"] == 465
        assert 0 <= ner["merged_equivalent_pairs"] <= min(ner["merged_pairs"], ner["equivalent_pairs"])
        # parity: 16 even and 15 odd prefixes, so C(16,2) + C(15,2) equivalent pairs
        assert ner["equivalent_pairs"] == 120 + 105

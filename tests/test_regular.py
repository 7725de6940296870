"""Task generators against independent brute-force recognisers on every string up to length 10."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from rnnautomata.automata import Machine
from rnnautomata.config import TaskConfig
from rnnautomata.data import TASKS, describe, make_task, regular
from rnnautomata.errors import TaskError

MAX_LEN = 10


def _runs(s: str) -> list[tuple[str, int]]:
    return [(ch, len(list(group))) for ch, group in itertools.groupby(s)]


def _tomita3(s: str) -> bool:
    """No odd run of 1s with an odd run of 0s anywhere after it (maximal runs; a trailing run counts)."""
    runs = _runs(s)
    odd_ones_seen = False
    for symbol, n in runs:
        if symbol == "0" and n % 2 == 1 and odd_ones_seen:
            return False  # "10" and "100110" are rejected, "100" and "1100" accepted
        odd_ones_seen = odd_ones_seen or (symbol == "1" and n % 2 == 1)
    return True


# Independent recognisers: each says whether a string over "01" is in the language.
TOMITA = {
    1: lambda s: re.fullmatch(r"1*", s) is not None,
    2: lambda s: re.fullmatch(r"(10)*", s) is not None,
    3: _tomita3,
    4: lambda s: "000" not in s,
    5: lambda s: s.count("0") % 2 == 0 and s.count("1") % 2 == 0,
    6: lambda s: (s.count("0") - s.count("1")) % 3 == 0,
    7: lambda s: re.fullmatch(r"0*1*0*1*", s) is not None,
}


def _dyck(depth: int):
    def accepts(s: str) -> bool:
        d = 0
        for ch in s:
            d += 1 if ch == "(" else -1
            if d < 0 or d > depth:
                return False
        return d == 0

    return accepts


def _check_acceptor(task: regular.RegularTask, accepts, max_len: int = MAX_LEN) -> None:
    """Every prefix output of every string up to max_len equals the recogniser's verdict."""
    alphabet = task.alphabet
    accept = task.outputs.index("accept")
    assert task.machine.output_of(()) == (accept if accepts("") else 1 - accept)
    strings = regular.all_strings(task.n_symbols, max_len)  # (K^L, L): every prefix of length <= L
    out = task.targets(strings)  # (K^L, L)
    for row, outs in zip(strings, out):
        text = "".join(alphabet[i] for i in row)
        for t in range(max_len):
            expected = accepts(text[: t + 1])
            assert (outs[t] == accept) == expected, f"{task.name} wrong on {text[: t + 1]!r}"


@pytest.mark.parametrize("index", range(1, 8))
def test_tomita_matches_brute_force(index):
    task = regular.tomita(index)
    _check_acceptor(task, TOMITA[index])


@pytest.mark.parametrize("index", range(1, 8))
def test_tomita_matches_aalpy_definition(index):
    """Each grammar agrees with AALpy's TomitaSUL (an outside definition) after every prefix, length <= 12."""
    tomita_sul = pytest.importorskip("aalpy.SULs").TomitaSUL
    task = regular.tomita(index)
    accept = task.outputs.index("accept")
    sul = tomita_sul(index)
    sul.pre()
    assert (task.machine.output_of(()) == accept) == sul.step(None)
    strings = regular.all_strings(task.n_symbols, 12)  # (4096, 12): every string <= 12 is a prefix of a row
    out = task.targets(strings)  # (4096, 12)
    for row, outs in zip(strings, out):
        sul.pre()
        for symbol, o in zip(row, outs):
            letter = task.alphabet[symbol]
            assert (o == accept) == sul.step(letter), f"tomita{index} disagrees with AALpy"
        sul.post()


def test_tomita3_rejects_odd_ones_later_followed_by_odd_zeros():
    m = regular.tomita(3).machine
    accepts = [m.outputs[m.output_of([m.alphabet.index(c) for c in s])] == "accept"
               for s in ("100110", "10", "100", "1100", "1001", "10011")]
    assert accepts == [False, False, True, True, True, True]


@pytest.mark.parametrize("index, n_states", [(i, n) for i, (_, n) in regular.TOMITA_DESCRIPTIONS.items()])
def test_tomita_machines_are_minimal_with_known_sizes(index, n_states):
    m = regular.tomita(index).machine
    assert m.n_states == n_states
    assert m.minimize().n_states == n_states


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_bounded_dyck_matches_brute_force(depth):
    task = regular.bounded_dyck1(depth)
    assert task.machine.n_states == depth + 2
    _check_acceptor(task, _dyck(depth))


def test_first_symbol_matches_brute_force():
    task = regular.first_symbol()
    assert task.machine.n_states == 3
    _check_acceptor(task, lambda s: s[:1] == "1")


def test_mod_k_counting_and_parity_match_brute_force():
    strings = regular.all_strings(2, MAX_LEN)  # (1024, 10)
    counts = np.cumsum(strings, axis=1)  # (1024, 10) number of 1s so far
    assert (regular.mod_k_counting(3).targets(strings) == counts % 3).all()
    assert (regular.mod_k_counting(5).targets(strings) == counts % 5).all()
    assert (regular.streaming_parity().targets(strings) == counts % 2).all()


def test_example_in_docstrings():
    t4 = regular.tomita(4)
    out = t4.targets(np.array([[1, 0, 0, 0, 1]]))[0]
    assert [t4.outputs[o] for o in out] == ["accept", "accept", "accept", "reject", "reject"]
    dyck = regular.bounded_dyck1(2)
    out = dyck.targets(np.array([[0, 0, 1, 1, 0, 0, 0]]))[0]
    assert [dyck.outputs[o] for o in out] == ["reject", "reject", "reject", "accept", "reject", "reject", "reject"]


@pytest.mark.parametrize("n_states, n_symbols, n_outputs", [(1, 1, 1), (5, 2, 2), (8, 3, 3), (12, 2, 2)])
def test_random_machine_is_minimal_reachable_and_seeded(n_states, n_symbols, n_outputs):
    a = regular.random_machine(n_states, n_symbols, n_outputs, np.random.default_rng(3))
    b = regular.random_machine(n_states, n_symbols, n_outputs, np.random.default_rng(3))
    assert a.n_states == n_states and a.is_complete()
    assert a.minimize().n_states == n_states
    assert a.reachable().n_states == n_states
    assert len(set(a.output_of_state.tolist())) == n_outputs
    np.testing.assert_array_equal(a.transitions, b.transitions)
    np.testing.assert_array_equal(a.output_of_state, b.output_of_state)


def test_random_machine_brute_force_run():
    """The machine's outputs equal a plain-Python walk of its own table (run/output_sequence agree)."""
    m = regular.random_machine(6, 3, 3, np.random.default_rng(0))
    strings = regular.all_strings(3, 6)
    out = m.output_sequence(strings)
    table, outs = m.transitions.tolist(), m.output_of_state.tolist()
    for row, got in zip(strings[::7], out[::7]):
        s, expected = m.start, []
        for a in row:
            s = table[s][a]
            expected.append(outs[s])
        assert got.tolist() == expected


def test_random_machine_rejects_impossible_sizes():
    with pytest.raises(TaskError, match="n_outputs"):
        regular.random_machine(2, 2, 3, np.random.default_rng(0))


def test_tomita_index_out_of_range():
    with pytest.raises(TaskError, match="1..7"):
        regular.tomita(8)


def test_registry_builds_every_task_and_keeps_old_names():
    for name in ("streaming_parity", "mod_k_counting", "machine"):
        assert name in TASKS
    for name in TASKS:
        if name == "machine":
            assert "needs task.path" in describe(name)
            continue
        task = make_task(TaskConfig(name=name))
        assert isinstance(task.machine, Machine) and task.machine.is_complete()
        assert task.machine.minimize().n_states == task.machine.n_states
        assert describe(name).startswith(task.description)  # written once, where the task is built


def test_registry_unknown_task():
    with pytest.raises(TaskError, match="unknown task"):
        make_task(TaskConfig(name="tomita9"))


def test_machine_task_reads_json_and_dot(tmp_path):
    m = regular.tomita(3).machine
    m.save(tmp_path / "t3.json")
    (tmp_path / "t3.dot").write_text(m.to_dot())
    for path in (tmp_path / "t3.json", tmp_path / "t3.dot"):
        task = make_task(TaskConfig(name="machine", path=str(path)))
        assert task.machine.equivalent(m)[0]

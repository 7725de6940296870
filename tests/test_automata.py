"""Tests for rnnautomata.automata: known answers, brute-force ground truth, round-trips.

Tier: unit, fast (a few seconds); hypothesis runs are seeded by the derandomize setting.
The brute-force helpers below walk the transition lists in plain Python, independently of the
numpy code under test.
"""

from __future__ import annotations

import itertools
import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnautomata.automata import MACHINE_FORMAT, Machine

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
BITS = ("0", "1")


# ---------------------------------------------------------------- ground truth
def observe(machine: Machine, string, start: int | None = None) -> str | None:
    """Observation after ``string``: output label, None (unknown) or "<fell off>"."""
    table = machine.transitions.tolist()
    state = machine.start if start is None else start
    for symbol in string:
        state = table[state][symbol]
        if state < 0:
            return "<fell off>"
    output = int(machine.output_of_state[state])
    return machine.outputs[output] if output >= 0 else None


def strings_up_to(n_symbols: int, max_len: int):
    """All strings of length <= max_len, shortest first, then lexicographic."""
    for length in range(max_len + 1):
        yield from (list(s) for s in itertools.product(range(n_symbols), repeat=length))


def first_difference(a: Machine, b: Machine, max_len: int):
    for string in strings_up_to(a.n_symbols, max_len):
        if observe(a, string) != observe(b, string):
            return string
    return None


def parity() -> Machine:
    return Machine.from_function(BITS, ("even", "odd"), 2, delta=lambda q, a: q ^ a, out=lambda q: q)


def parity_prefix_tree(depth: int) -> Machine:
    """Binary prefix tree (heap numbering) with parity outputs; leaves' transitions open."""
    n_nodes = 2 ** (depth + 1) - 1
    nodes = np.arange(n_nodes)
    transitions = np.stack([2 * nodes + 1, 2 * nodes + 2], axis=1)  # (N, 2)
    transitions[transitions >= n_nodes] = -1
    parity_of = np.zeros(n_nodes, dtype=np.int64)
    for node in range(1, n_nodes):
        parity_of[node] = parity_of[(node - 1) // 2] ^ ((node - 1) % 2)
    return Machine(BITS, ("even", "odd"), transitions, parity_of)


def permuted(machine: Machine, rng: np.random.Generator) -> Machine:
    """The same machine with its state ids shuffled."""
    order = rng.permutation(machine.n_states)  # new id -> old id
    new_id = np.empty(machine.n_states + 1, dtype=np.int64)
    new_id[order] = np.arange(machine.n_states)
    new_id[-1] = -1
    return machine.replace(transitions=new_id[machine.transitions[order]],
                           output_of_state=machine.output_of_state[order],
                           start=int(new_id[machine.start]))


def blown_up(machine: Machine, copies: int, rng: np.random.Generator) -> Machine:
    """An equivalent machine: ``copies`` copies of each state, transitions to random copies."""
    n = machine.n_states
    copy_of = rng.integers(0, copies, size=(n * copies, machine.n_symbols))
    base = np.tile(machine.transitions, (copies, 1))  # (N * copies, K)
    transitions = np.where(base >= 0, base + n * copy_of, -1)
    return machine.replace(transitions=transitions,
                           output_of_state=np.tile(machine.output_of_state, copies))


@st.composite
def machines(draw, max_states=6, max_symbols=3, max_outputs=3, n_symbols=None, complete=False):
    n_states = draw(st.integers(1, max_states))
    k = n_symbols if n_symbols is not None else draw(st.integers(1, max_symbols))
    n_outputs = draw(st.integers(1, max_outputs))
    low = 0 if complete else -1
    transitions = draw(st.lists(st.integers(low, n_states - 1), min_size=n_states * k,
                                max_size=n_states * k))
    outputs = draw(st.lists(st.integers(low, n_outputs - 1), min_size=n_states, max_size=n_states))
    start = draw(st.integers(0, n_states - 1))
    return Machine(tuple("abc"[:k]), tuple(f"y{i}" for i in range(n_outputs)),
                   np.array(transitions).reshape(n_states, k), np.array(outputs), start)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs, message", [
    (dict(transitions=np.zeros((2, 3), int)), "columns"),
    (dict(transitions=np.array([[0, 2], [0, 0]])), r"\[-1, 2\)"),
    (dict(output_of_state=np.array([0, 5])), "output_of_state"),
    (dict(output_of_state=np.array([0])), "shape"),
    (dict(start=2), "start"),
    (dict(alphabet=("0", "0")), "repeated"),
    (dict(alphabet="01"), "one string"),
    (dict(outputs=(1, 2)), "strings"),
    (dict(transitions=np.zeros((2, 2)) + 0.5), "integers"),
])
def test_construction_rejects_inconsistent_fields(kwargs, message):
    fields = dict(alphabet=BITS, outputs=("even", "odd"), transitions=np.array([[0, 1], [1, 0]]),
                  output_of_state=np.array([0, 1]), start=0)
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Machine(**fields)


def test_machine_is_frozen_and_arrays_read_only():
    machine = parity()
    with pytest.raises(AttributeError):
        machine.start = 1
    with pytest.raises(ValueError):
        machine.transitions[0, 0] = 1


# ----------------------------------------------------------------------- running
def test_streaming_parity_outputs():
    # input 1 0 1 1 -> output odd odd even odd
    machine = parity()
    assert machine.output_sequence(np.array([[1, 0, 1, 1]])).tolist() == [[1, 1, 0, 1]]
    assert machine.output_of([1, 0, 1, 1]) == 1
    assert machine.output_of([]) == 0
    assert machine.is_complete()


def test_run_marks_fell_off_and_step_broadcasts():
    tree = parity_prefix_tree(2)  # 7 nodes, strings longer than 2 fall off
    states = tree.run(np.array([[1, 1, 0, 1], [0, 1, 1, 1]]))
    assert states.tolist() == [[2, 6, -1, -1], [1, 4, -1, -1]]
    assert tree.output_sequence(np.array([[1, 1, 0]])).tolist() == [[1, 0, -1]]
    assert tree.step(np.array([0, 2, -1]), 1).tolist() == [2, 6, -1]
    assert not tree.is_complete()
    with pytest.raises(ValueError, match="symbol ids"):
        tree.run(np.array([[2]]))
    with pytest.raises(ValueError, match="shape"):
        tree.run(np.array([0, 1]))


def test_is_complete_ignores_unreachable_states():
    machine = Machine(BITS, ("y",), np.array([[0, 0], [-1, -1]]), np.array([0, 0]))
    assert machine.is_complete()


def test_reachable_renumbers_in_bfs_order():
    # start 2; 2 -0-> 3, 2 -1-> 0; 3 -> 3; 0 -> 2; state 1 unreachable
    machine = Machine(BITS, ("y", "z"), np.array([[2, 2], [1, 1], [3, 0], [3, 3]]),
                      np.array([0, 1, 1, 0]), start=2)
    trimmed = machine.reachable()
    assert trimmed.start == 0
    assert trimmed.transitions.tolist() == [[1, 2], [1, 1], [0, 0]]
    assert trimmed.output_of_state.tolist() == [1, 0, 0]


# ------------------------------------------------------------------ minimize
def test_parity_and_redundant_parity_minimize_to_two_states():
    assert parity().minimize().n_states == 2
    redundant = blown_up(parity(), 3, np.random.default_rng(0))
    minimal = redundant.minimize()
    assert minimal.n_states == 2
    assert np.array_equal(minimal.transitions, parity().transitions)


def test_mod3_counter_with_copies_minimizes_to_three():
    # 9 states = (count mod 3, copy); copy changes arbitrarily, output = count == 0
    counter = Machine.from_function(BITS, ("zero", "nonzero"), 9,
                                    delta=lambda q, a: ((q % 3 + a) % 3) + 3 * ((q + a) % 3),
                                    out=lambda q: int(q % 3 != 0))
    minimal = counter.minimize()
    assert minimal.n_states == 3
    mod3 = Machine.from_function(BITS, ("zero", "nonzero"), 3, delta=lambda q, a: (q + a) % 3,
                                 out=lambda q: int(q != 0))
    assert minimal.isomorphic(mod3)
    assert minimal.equivalent(mod3) == (True, None)


def test_partial_parity_tree_minimizes_to_one_state_per_depth_and_parity():
    # A depth-4 parity prefix tree has 31 nodes. Open transitions lead to the sink, which no
    # state matches, so a node's depth d is observable (strings of length 5 - d fall off) and its
    # parity is its output: the minimal machine has 1 + 2 * 4 = 9 states, not 31 and not 2.
    tree = parity_prefix_tree(4)
    assert tree.n_states == 31
    minimal = tree.minimize()
    assert minimal.n_states == 9
    assert first_difference(tree, minimal, 6) is None
    # closing the leaves with parity transitions makes it parity itself
    closed = tree.transitions.copy()
    leaves = np.arange(15, 31)
    closed[leaves] = np.where(tree.output_of_state[leaves, None] == 0, [[15, 16]], [[16, 15]])
    assert tree.replace(transitions=closed).minimize().n_states == 2


def test_unknown_output_is_its_own_class():
    # states 0 and 1 differ only in that 1's output is unknown; 2 and 3 are both unknown
    machine = Machine(("a",), ("y",), np.array([[1], [2], [3], [3]]), np.array([0, -1, -1, -1]))
    minimal = machine.minimize()
    assert minimal.output_of_state.tolist() == [0, -1]
    assert minimal.transitions.tolist() == [[1], [1]]
    # an unknown-output state with open transitions is not the sink: it stays
    partial = Machine(("a",), ("y",), np.array([[1], [-1]]), np.array([0, -1]))
    assert partial.minimize().transitions.tolist() == [[1], [-1]]


def test_minimize_is_canonical_under_state_permutation():
    rng = np.random.default_rng(1)
    machine = blown_up(parity_prefix_tree(3), 2, rng)
    reference = machine.minimize()
    for _ in range(3):
        other = permuted(machine, rng).minimize()
        assert np.array_equal(other.transitions, reference.transitions)
        assert np.array_equal(other.output_of_state, reference.output_of_state)


def test_minimize_a_131071_node_prefix_tree():
    tree = parity_prefix_tree(16)  # 131071 nodes
    minimal = tree.minimize()
    assert minimal.n_states == 1 + 2 * 16


@SETTINGS
@given(machines())
def test_minimize_properties(machine):
    minimal = machine.minimize()
    assert minimal.n_states <= machine.reachable().n_states <= machine.n_states
    again = minimal.minimize()
    assert np.array_equal(again.transitions, minimal.transitions)
    assert np.array_equal(again.output_of_state, minimal.output_of_state)
    assert first_difference(machine, minimal, 6) is None
    # minimal: any two states are told apart by a string shorter than n_states (+ the sink)
    probes = list(strings_up_to(minimal.n_symbols, minimal.n_states - 1))
    signatures = [tuple(observe(minimal, s, start=q) for s in probes)
                  for q in range(minimal.n_states)]
    assert len(set(signatures)) == minimal.n_states


# ------------------------------------------------------------------ equivalence
def test_equivalence_counterexample_known_answer():
    tree = parity_prefix_tree(4)
    assert tree.equivalent(parity()) == (False, [0, 0, 0, 0, 0])
    # flipping the output of node "1 0" (heap id 5) gives the counterexample [1, 0]
    flipped = tree.replace(output_of_state=np.where(np.arange(31) == 5, 0, tree.output_of_state))
    assert tree.equivalent(flipped) == (False, [1, 0])
    assert first_difference(tree, flipped, 5) == [1, 0]


def test_equivalence_compares_output_labels_not_ids():
    swapped = Machine(BITS, ("odd", "even"), parity().transitions, np.array([1, 0]))
    assert parity().equivalent(swapped) == (True, None)


def test_equivalence_requires_same_alphabet():
    other = Machine(("a", "b"), ("even", "odd"), parity().transitions, parity().output_of_state)
    with pytest.raises(ValueError, match="alphabets"):
        parity().equivalent(other)


@SETTINGS
@given(st.data())
def test_equivalence_matches_brute_force(data):
    a = data.draw(machines(max_states=4, n_symbols=2, max_outputs=2))
    choice = data.draw(st.sampled_from(["random", "minimized", "blown_up", "mutated"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    if choice == "random":
        b = data.draw(machines(max_states=4, n_symbols=2, max_outputs=2))
        b = b.replace(outputs=a.outputs) if len(b.outputs) == len(a.outputs) else b
    elif choice == "minimized":
        b = a.minimize()
    elif choice == "blown_up":
        b = blown_up(a, 2, rng)
    else:  # one transition or output changed deep inside a copy: longer counterexamples
        b = blown_up(a, 2, rng)
        state = int(rng.integers(b.n_states))
        if rng.random() < 0.5:
            transitions = b.transitions.copy()
            transitions[state, rng.integers(2)] = rng.integers(-1, b.n_states)
            b = b.replace(transitions=transitions)
        else:
            output_of_state = b.output_of_state.copy()
            output_of_state[state] = rng.integers(-1, len(b.outputs))
            b = b.replace(output_of_state=output_of_state)
    same, counterexample = a.equivalent(b)
    bound = min(a.n_states + b.n_states + 2, 9)  # shortest distinguishing string is shorter
    expected = first_difference(a, b, bound)
    if same:
        assert counterexample is None and expected is None
    else:
        assert counterexample == expected  # distinguishes; shortest; lexicographically first
    assert a.equivalent(a) == (True, None)
    assert b.equivalent(a) == (same, counterexample)
    # equivalence agrees with the canonical minimal form
    if a.outputs == b.outputs:
        ma, mb = a.minimize(), b.minimize()
        identical = (np.array_equal(ma.transitions, mb.transitions)
                     and np.array_equal(ma.output_of_state, mb.output_of_state))
        assert identical == same


@SETTINGS
@given(machines(max_states=4, n_symbols=2, max_outputs=2), st.integers(0, 99))
def test_equivalence_is_transitive(a, seed):
    rng = np.random.default_rng(seed)
    b = permuted(blown_up(a, 2, rng), rng)
    c = b.minimize()
    assert a.equivalent(b)[0] and b.equivalent(c)[0] and a.equivalent(c)[0]
    # and a machine not equivalent to c is not equivalent to a either
    d = c.replace(output_of_state=np.where(np.arange(c.n_states) == c.n_states - 1,
                                           (c.output_of_state + 2) % 3 - 1, c.output_of_state),
                  outputs=("y0", "y1"))
    assert d.equivalent(c)[0] == d.equivalent(a)[0]


def test_isomorphic():
    rng = np.random.default_rng(2)
    tree = parity_prefix_tree(3)
    assert tree.isomorphic(permuted(tree, rng))
    assert not tree.isomorphic(parity())
    flipped = tree.replace(output_of_state=1 - tree.output_of_state)
    assert not tree.isomorphic(flipped)


# ---------------------------------------------------------------- conversions
def assert_same_machine(a: Machine, b: Machine):
    assert a.alphabet == b.alphabet and a.outputs == b.outputs and a.start == b.start
    assert np.array_equal(a.transitions, b.transitions)
    assert np.array_equal(a.output_of_state, b.output_of_state)


def partial_example() -> Machine:
    return Machine(("a", "b", "c,d"), ("yes", "no", 'say "hi"\\'),
                   np.array([[1, -1, 2], [1, 1, 0], [-1, -1, -1]]), np.array([0, -1, 2]),
                   start=1, meta={"step": 3, "note": "x"})


@pytest.mark.parametrize("machine", [parity(), parity_prefix_tree(3), partial_example()])
def test_json_round_trip(machine, tmp_path):
    data = json.loads(json.dumps(machine.to_json()))
    assert data["format"] == MACHINE_FORMAT
    assert_same_machine(Machine.from_json(data), machine)
    path = tmp_path / "machine.json"
    machine.save(path)
    loaded = Machine.load(path)
    assert_same_machine(loaded, machine)
    assert dict(loaded.meta) == dict(machine.meta)
    assert [p.name for p in tmp_path.iterdir()] == ["machine.json"]  # no temp file left


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="aalpy/2"), "format"),
    (lambda d: d.pop("format"), "format"),
    (lambda d: d.pop("transitions"), "lacks"),
    (lambda d: d.update(transitions=[[0, 1], [1]]), "different lengths"),
    (lambda d: d.update(transitions=[[0, "1"], [1, 0]]), "integers"),
    (lambda d: d.update(output_of_state="01"), "must be a list"),
    (lambda d: d.update(start=7), "start"),
    (lambda d: d.update(transitions=[[0, 9], [1, 0]]), "malformed machine JSON"),
    (lambda d: d.update(meta=[1]), "meta"),
])
def test_from_json_rejects_malformed_input(mutate, message):
    data = parity().to_json()
    mutate(data)
    with pytest.raises(ValueError, match=message):
        Machine.from_json(data)
    with pytest.raises(ValueError, match="object"):
        Machine.from_json([1, 2])


def test_load_rejects_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Machine.load(path)


def test_meta_must_be_json_serialisable():
    with pytest.raises(ValueError, match="JSON-serialisable"):
        parity().replace(meta={"x": object()}).to_json()


@pytest.mark.parametrize("machine", [parity(), parity_prefix_tree(3), partial_example()])
def test_dot_round_trip(machine):
    text = machine.to_dot(name="my machine")
    assert text.startswith('digraph "my machine" {')
    assert_same_machine(Machine.from_dot(text), machine)


def test_dot_groups_parallel_edges():
    loop = Machine(("a", "b"), ("y",), np.array([[0, 0]]), np.array([0]))
    text = loop.to_dot()
    assert '0 -> 0 [label="a,b"];' in text
    assert "__start -> 0;" in text


def test_from_dot_reads_hand_written_subset():
    text = """
    digraph tomita1 {   /* ones only */
      rankdir = LR
      start [shape=point]; q0 [label="accept", start=true]
      q1 [output="reject"]   # dead state
      q0 -> q0 [label="1"]; q0 -> q1 [label="0"]
      q1 -> q1 [label="0, 1"]   // both symbols
    }
    """
    machine = Machine.from_dot(text)
    assert machine.alphabet == ("0", "1") and machine.outputs == ("accept", "reject")
    # node "start" is an ordinary (isolated) node here; q0 is the start
    assert machine.n_states == 3 and machine.start == 1
    assert machine.output_sequence(np.array([[1, 1, 0, 1]])).tolist() == [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match="two edges"):
        Machine.from_dot('digraph { a [output="y"]; a -> a [label="x"]; a -> a [label="x"] }')
    with pytest.raises(ValueError, match="subgraphs"):
        Machine.from_dot("digraph { subgraph s { a } }")
    with pytest.raises(ValueError, match="digraph"):
        Machine.from_dot("hello")


def test_from_dot_reads_doublecircle_acceptors_and_record_labels():
    """Parity of 1s drawn two ways; brute force over all strings up to length 6."""
    dfa = Machine.from_dot("""digraph { __start0 [label=""]; __start0 -> e
      e [label="e", shape=doublecircle]; o [label="o"]
      e -> e [label="0"]; e -> o [label="1"]; o -> o [label="0"]; o -> e [label="1"] }""")
    moore = Machine.from_dot("""digraph { __start0 -> o
      e [label="{e|even}", shape=record]; o [label="o|odd", shape=Mrecord]
      e -> e [label="0"]; e -> o [label="1"]; o -> o [label="0"]; o -> e [label="1"] }""")
    assert dfa.outputs == ("reject", "accept") and set(moore.outputs) == {"even", "odd"}
    for string in strings_up_to(2, 6):
        ones = sum(string)
        assert observe(dfa, string) == ("accept" if ones % 2 == 0 else "reject")
        assert observe(moore, string) == ("odd" if ones % 2 == 0 else "even")  # start is o
    with pytest.raises(ValueError, match="expected 'state\\|output'"):
        Machine.from_dot('digraph { s [label="s", shape=record] }')


@pytest.mark.parametrize("machine", [parity(), parity_prefix_tree(3), partial_example()])
def test_networkx_round_trip(machine):
    graph = machine.to_networkx()
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.nodes[machine.start]["start"]
    assert graph.number_of_edges() == int((machine.transitions >= 0).sum())
    back = Machine.from_networkx(graph)
    assert_same_machine(back, machine)
    assert dict(back.meta) == dict(machine.meta)


def test_from_networkx_infers_labels():
    graph = nx.MultiDiGraph()
    graph.add_node("even", output="E", start=True)
    graph.add_node("odd", output="O")
    for source, target, symbol in [("even", "even", "0"), ("even", "odd", "1"),
                                   ("odd", "odd", "0"), ("odd", "even", "1")]:
        graph.add_edge(source, target, symbol=symbol)
    machine = Machine.from_networkx(graph)
    assert machine.alphabet == BITS and machine.outputs == ("E", "O")
    assert machine.equivalent(parity().replace(outputs=("E", "O"))) == (True, None)


def test_from_function_and_encode():
    machine = parity()
    assert machine.encode(["1", "0", "1"]) == [1, 0, 1]
    with pytest.raises(ValueError, match="not in the alphabet"):
        machine.encode(["2"])
    partial = Machine.from_function(BITS, ("y",), 2, delta=lambda q, a: None if q else a,
                                    out=lambda q: None if q else 0)
    assert partial.transitions.tolist() == [[0, 1], [-1, -1]]
    assert partial.output_of_state.tolist() == [0, -1]


def test_output_of_reads_a_str_as_labels_not_digits():
    """Alphabet ("1", "0"): the label "1" is id 0, so "10" must not be read as ids [1, 0]."""
    # count of label "1" mod 3; output names the count
    machine = Machine(("1", "0"), ("c0", "c1", "c2"), np.array([[1, 0], [2, 1], [0, 2]]),
                      np.array([0, 1, 2]))
    for n in range(7):
        for letters in itertools.product("10", repeat=n):
            text = "".join(letters)
            expected = f"c{text.count('1') % 3}"  # ground truth from the text itself
            assert machine.outputs[machine.output_of(text)] == expected, text
            assert machine.outputs[machine.output_of(list(letters))] == expected, text
            ids = [0 if ch == "1" else 1 for ch in text]
            assert machine.outputs[machine.output_of(ids)] == expected, text
    assert machine.output_of("") == machine.output_of([]) == 0


def test_output_of_rejects_str_for_multi_character_labels():
    machine = Machine(("ab", "c"), ("x",), np.array([[0, 0]]), np.array([0]))
    with pytest.raises(ValueError, match="pass a list of labels or ids") as info:
        machine.output_of("abc")
    assert "\n" not in str(info.value)
    assert machine.output_of(["ab", "c"]) == machine.output_of([0, 1]) == 0
    with pytest.raises(ValueError, match="not in the alphabet"):
        parity().output_of("012")


def test_counterexample_of_mod4_vs_mod5_counter():
    def counter(k):
        return Machine.from_function(BITS, ("zero", "nonzero"), k, delta=lambda q, a: (q + a) % k,
                                     out=lambda q: int(q != 0))
    assert counter(4).equivalent(counter(5)) == (False, [1, 1, 1, 1])
    assert first_difference(counter(4), counter(5), 5) == [1, 1, 1, 1]


def test_deep_counterexamples_match_brute_force():
    # minimal random machines, one output flipped or one transition redirected: the flip sits
    # behind an access string, so counterexamples are longer than for random pairs
    rng = np.random.default_rng(3)
    lengths = []
    for _ in range(40):
        n = int(rng.integers(4, 9))
        a = Machine(BITS, ("y0", "y1"), rng.integers(0, n, size=(n, 2)),
                    rng.integers(-1, 2, size=n)).minimize()
        b = a.replace(output_of_state=a.output_of_state.copy())
        state = int(rng.integers(a.n_states))
        if rng.random() < 0.5:
            b = b.replace(output_of_state=np.where(np.arange(a.n_states) == state,
                                                   (a.output_of_state + 2) % 3 - 1, a.output_of_state))
        else:
            transitions = a.transitions.copy()
            transitions[state, rng.integers(2)] = rng.integers(-1, a.n_states)
            b = b.replace(transitions=transitions)
        same, counterexample = a.equivalent(b)
        expected = first_difference(a, b, a.n_states + b.n_states)
        assert counterexample == expected and same == (expected is None)
        lengths.append(-1 if expected is None else len(expected))
    assert max(lengths) >= 4  # the test does reach deep counterexamples


def test_errors_are_project_errors_and_value_errors(tmp_path):
    from rnnautomata.automata import MachineError
    from rnnautomata.errors import RnnAutomataError

    with pytest.raises(MachineError) as caught:
        Machine.load(tmp_path / "missing.json")
    assert isinstance(caught.value, RnnAutomataError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)

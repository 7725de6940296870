"""render and history: DOT structure of known machines, files written, fallbacks, figures."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from fixtures_run import synthetic_dynamics, write_synthetic_run

from rnnautomata import render
from rnnautomata.automata import Machine
from rnnautomata.errors import CheckpointError
from rnnautomata.history import draw_merge_history, history_layout, merge_history_graph
from rnnautomata.probe import prefix_tree
from rnnautomata.runs import RunDir

needs_dot = pytest.mark.skipif(render.graphviz_binary() is None, reason="graphviz `dot` not installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parity() -> Machine:
    return Machine(("0", "1"), ("even", "odd"), np.array([[0, 1], [1, 0]]), np.array([0, 1]))


def full_tree(depth: int) -> Machine:
    """The prefix tree of every binary string up to ``depth``; output = parity; leaves open."""
    tree = prefix_tree(2, depth)
    outputs = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
    return Machine(("0", "1"), ("even", "odd"), tree.children, outputs)


def parsed(dot: str) -> dict:
    """graphviz's own reading of the DOT text (json0: nodes and edges as graphviz sees them)."""
    proc = subprocess.run([render.graphviz_binary(), "-Tjson0"], input=dot.encode(), capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def states_and_edges(graph: dict) -> tuple[list[str], list[tuple[str, str, str]]]:
    names = [o["name"] for o in graph["objects"]]
    edges = [(names[e["tail"]], names[e["head"]], e.get("label", "")) for e in graph.get("edges", [])]
    return [n for n in names if n.startswith("s")], edges


# ----------------------------------------------------------------------------- DOT
@needs_dot
def test_parity_dot_has_two_states_four_transitions_and_a_start_arrow():
    states, edges = states_and_edges(parsed(render.machine_dot(parity(), title="parity")))
    assert sorted(states) == ["s0", "s1"]
    transitions = sorted((t, h, label) for t, h, label in edges if t.startswith("s"))
    assert transitions == [("s0", "s0", "0"), ("s0", "s1", "1"), ("s1", "s0", "1"), ("s1", "s1", "0")]
    assert ("__start", "s0", "") in edges


@needs_dot
def test_parallel_transitions_are_grouped_into_one_labelled_edge():
    machine = Machine(("a", "b", "c"), ("x", "y"), np.array([[1, 1, 0], [1, 1, 1]]), np.array([0, 1]))
    _, edges = states_and_edges(parsed(render.machine_dot(machine)))
    transitions = sorted((t, h, label) for t, h, label in edges if t.startswith("s"))
    assert transitions == [("s0", "s0", "c"), ("s0", "s1", "a,b"), ("s1", "s1", "a,b,c")]


@needs_dot
def test_prefix_tree_has_its_nodes_edges_and_an_open_stub_per_open_transition():
    machine = full_tree(3)  # 15 states, 14 tree edges, 8 leaves x 2 open transitions
    assert render.is_tree(machine)
    states, edges = states_and_edges(parsed(render.machine_dot(machine)))
    assert len(states) == 15
    tree_edges = [e for e in edges if e[0].startswith("s") and e[1].startswith("s")]
    stubs = [e for e in edges if e[1].startswith("open_")]
    assert len(tree_edges) == 14 and len(stubs) == 16
    assert {label for _, _, label in stubs} == {"0", "1"}
    dot = render.machine_dot(machine)
    assert "rankdir=LR" in dot and "style=dashed" in dot


def test_start_state_and_output_colours_are_styled():
    dot = render.machine_dot(parity())
    s0 = next(line for line in dot.splitlines() if line.strip().startswith("s0 ["))
    s1 = next(line for line in dot.splitlines() if line.strip().startswith("s1 ["))
    assert "penwidth=2.5" in s0 and "penwidth" not in s1
    assert render.OUTPUT_COLOURS[0] in s0 and render.OUTPUT_COLOURS[1] in s1


def test_unknown_output_and_unreachable_state_are_drawn():
    machine = Machine(("0",), ("a",), np.array([[0], [1]]), np.array([-1, 0]))
    dot = render.machine_dot(machine)
    assert "unknown" in dot  # legend entry for the unknown output
    assert "unreachable" in dot and "filled,dashed" in dot


@needs_dot
def test_large_machine_is_drawn_minimised_and_says_so():
    machine = full_tree(4)  # 31 states; minimises to 2 per depth (parity) = 9 states
    dot = render.machine_dot(machine, max_states=20, title="big")
    states, _ = states_and_edges(parsed(dot))
    assert len(states) == machine.minimize().n_states < 20
    assert "minimised: 9 of 31 extracted states" in dot


def test_very_large_machine_falls_back_to_unlabelled_points():
    dot = render.machine_dot(full_tree(6), max_states=5)
    assert "drawn without labels" in dot and "shape=point" in dot
    assert "open_" not in dot


def test_stable_positions_keep_states_in_place_through_a_merge():
    tree = full_tree(3)
    minimal = tree.minimize()
    pos_tree, pos_min, pos_parity = render.stable_positions([tree, minimal, parity()])
    assert set(pos_tree) == set(range(tree.n_states))
    assert pos_tree[tree.start] == pos_min[minimal.start] == pos_parity[0]
    for string in ([0], [1], [1, 0], [0, 1, 1]):  # a state sits where its access string sits
        t = tree.run(np.array([string]))[0, -1]
        m = minimal.run(np.array([string]))[0, -1]
        if render.access_strings(minimal)[m] == tuple(string):
            assert pos_min[m] == pos_tree[t]
    assert len(set(pos_tree.values())) == tree.n_states  # no two states on top of each other
    dot = render.machine_dot(minimal, positions=pos_min)
    assert "layout=neato" in dot and dot.count("!\"") >= minimal.n_states


def test_max_gap_closes_up_a_small_machine_and_keeps_the_order_of_its_states():
    tree, small = full_tree(6), parity()
    loose, closed = (render.stable_positions([small, tree], max_gap=gap) for gap in (None, 0.6))
    assert loose[1] == render.stable_positions([small, tree])[1]
    (_, y0), (_, y1) = loose[0][0], loose[0][1]
    assert abs(y0 - y1) > 8  # in the union tree, the start and state '1' are far apart
    assert abs(closed[0][0][1] - closed[0][1][1]) == pytest.approx(0.6)
    assert closed[0][0][0] == loose[0][0][0] == 0.0  # the start stays at the left
    for pos_loose, pos_closed in zip(loose, closed):
        for axis in (0, 1):  # same order along both axes, no gap wider than allowed
            order = sorted(pos_loose, key=lambda q: (pos_loose[q][axis], q))
            values = [pos_closed[q][axis] for q in order]
            assert values == sorted(values)
            assert max(np.diff(values), default=0) <= max(0.6, 1.5 * render.RANK_SEP) + 1e-9
    assert closed[1] == loose[1]  # the full tree is dense: its rows are under 0.6 in apart already


def test_positions_follow_the_minimised_machine_when_it_is_drawn_instead():
    tree = full_tree(4)
    (positions,) = render.stable_positions([tree])
    dot = render.machine_dot(tree, positions=positions, max_states=10)
    x, y = positions[tree.start]
    assert f'pos="{x:.3f},{y:.3f}!"' in dot


def random_connected(n_states: int, seed: int = 0) -> Machine:
    """A seeded random binary machine, every state reachable (a random spanning tree from 0)."""
    rng = np.random.default_rng(seed)
    transitions = rng.integers(0, n_states, size=(n_states, 2))  # (N, 2)
    for child in range(1, n_states):
        transitions[rng.integers(child), rng.integers(2)] = child  # parent < child: reachable
    return Machine(("0", "1"), ("reject", "accept"), transitions, rng.integers(0, 2, n_states))


def test_layout_engine_is_dot_for_small_machines_and_trees_and_sfdp_for_big_graphs():
    assert render.layout_engine(parity()) == "dot"
    assert render.layout_engine(full_tree(8)) == "dot"  # 511 states, but layered trees stay fast
    big = random_connected(render.SCALABLE_LAYOUT_STATES + 1)
    assert render.layout_engine(big) == "sfdp"
    (positions,) = render.stable_positions([big])
    assert render.layout_engine(big, positions) == "neato"
    dot = render.machine_dot(big, max_states=1000)
    assert "layout=sfdp" in dot and "overlap=prism" in dot and "splines=false" in dot
    s0 = next(line for line in dot.splitlines() if line.strip().startswith("s0 ["))
    assert "penwidth=2.5" in s0 and "__start -> s0" in dot  # the start state keeps its marks
    assert render.OUTPUT_COLOURS[int(big.output_of_state[0])] in s0
    edges = [line for line in dot.splitlines() if line.strip().startswith("s") and " -> s" in line]
    assert edges and not any("label=" in line for line in edges)  # symbols are colours, not labels
    assert "edge on:" in dot  # ... with a legend


@needs_dot
def test_a_300_state_machine_draws_as_svg_with_the_scalable_layout(tmp_path):
    machine = random_connected(300)
    assert machine.minimize().n_states > 200  # so the default max_states draws it unlabelled
    for max_states in (1000, render.DEFAULT_MAX_STATES):  # labelled, and as points
        drawn, _, _ = render.choose_drawn(machine, max_states)
        assert render.layout_engine(drawn) == "sfdp"
        paths = render.draw_machine(machine, tmp_path / f"big_{max_states}", formats=("svg",),
                                    max_states=max_states)
        assert paths == [tmp_path / f"big_{max_states}.svg"]  # not the .dot fallback
        root = ET.parse(paths[0]).getroot()
        nodes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
        assert sum(1 for g in nodes if g.find("{http://www.w3.org/2000/svg}title").text.startswith("s")) \
            == drawn.n_states


# ----------------------------------------------------------------------------- files
@needs_dot
def test_draw_machine_writes_valid_svg_and_png(tmp_path):
    paths = render.draw_machine(parity(), tmp_path / "sub" / "parity", title="parity")
    assert [p.suffix for p in paths] == [".svg", ".png"]
    root = ET.parse(paths[0]).getroot()
    assert root.tag.endswith("svg")
    assert paths[1].read_bytes()[:8] == PNG_MAGIC


def test_missing_graphviz_writes_dot_and_one_notice(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(render.graphviz, "graphviz_binary", lambda: None)
    monkeypatch.setattr(render.graphviz, "_notice_given", False)
    first = render.draw_machine(parity(), tmp_path / "a")
    second = render.draw_machine(full_tree(2), tmp_path / "b")
    assert first == [tmp_path / "a.dot"] and second == [tmp_path / "b.dot"]
    assert first[0].read_text().startswith("digraph")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "graphviz" in err[0] and ".dot" in err[0]
    assert render.dot_to_svgs(["digraph{a}"]) == [None]


@needs_dot
def test_dot_to_svgs_batches_and_isolates_a_bad_graph():
    dots = [render.machine_dot(parity()), "digraph { a -> }", render.machine_dot(full_tree(2))]
    svgs = render.dot_to_svgs(dots, chunk=3)
    assert svgs[0].startswith("<svg") and svgs[2].startswith("<svg") and svgs[1] is None
    assert "<?xml" not in svgs[0] and "<!--" not in svgs[0]


# ----------------------------------------------------------------------------- figures
def test_timeline_figure_is_written(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=20, depth=4)
    paths = render.plot_timeline(synthetic_dynamics(run), tmp_path / "timeline", title="t")
    assert [p.suffix for p in paths] == [".svg", ".png"]
    assert ET.parse(paths[0]).getroot().tag.endswith("svg")
    assert paths[1].read_bytes()[:8] == PNG_MAGIC


def test_timeline_across_seeds_is_written(tmp_path):
    runs = [synthetic_dynamics(write_synthetic_run(tmp_path / f"r{i}", n_checkpoints=12 + 4 * i, depth=3))
            for i in range(3)]
    paths = render.plot_timeline_seeds(runs, tmp_path / "seeds")
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError):
        render.plot_timeline_seeds([], tmp_path / "none")


def test_merge_history_graph_of_a_hand_made_dynamics():
    dyn = {"checkpoints": [
        {"step": 0, "n_states": 3, "successor": None},
        {"step": 5, "n_states": 4, "successor": [0, 1, 1]},        # 1 and 2 merge; 2, 3 appear
        {"step": 9, "n_states": 2, "successor": [0, 1, -1, 1]},    # 1 and 3 merge; 2 vanishes
    ]}
    graph = merge_history_graph(dyn)
    assert graph.number_of_nodes() == 9
    assert sorted(graph.edges()) == [((0, 0), (5, 0)), ((0, 1), (5, 1)), ((0, 2), (5, 1)),
                                     ((5, 0), (9, 0)), ((5, 1), (9, 1)), ((5, 3), (9, 1))]
    assert [n for n, d in graph.nodes(data=True) if d["merged"]] == [(5, 1), (9, 1)]
    assert graph.edges[(0, 2), (5, 1)]["merge"] and not graph.edges[(0, 0), (5, 0)]["merge"]
    pos = history_layout(graph)
    assert pos[(5, 0)][0] == 1.0 and pos[(9, 1)][0] == 2.0


def test_merge_history_rejects_inconsistent_successors():
    dyn = {"checkpoints": [{"step": 0, "n_states": 3, "successor": None},
                           {"step": 1, "n_states": 2, "successor": [0, 1]}]}
    with pytest.raises(ValueError, match="3 states"):
        merge_history_graph(dyn)


def test_merge_history_of_a_run_is_drawn(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=20, depth=4)
    graph = merge_history_graph(synthetic_dynamics(run))
    paths = draw_merge_history(graph, tmp_path / "history")
    assert paths[1].read_bytes()[:8] == PNG_MAGIC


# ----------------------------------------------------------------------------- runs
@needs_dot
def test_render_run_writes_every_figure(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=24, depth=4)
    paths = render.render_run(run)
    names = {p.name for p in paths}
    for expected in ("timeline.svg", "timeline.png", "merge_history.png", "merge_snapshots.png",
                     "final_machine.svg", "final_machine_min.png"):
        assert expected in names
    assert all(p.is_file() and p.parent == run / "figures" for p in paths)
    steps = render.snapshot_steps(synthetic_dynamics(run))
    assert 3 <= len(steps) <= 6 and steps == sorted(steps)
    assert {f"snapshot_step_{s:06d}.svg" for s in steps} <= names


@needs_dot
def test_render_run_for_one_step(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=12, depth=3)
    paths = render.render_run(run, steps=[100])
    assert {p.name for p in paths} == {"machine_step_000100.svg", "machine_step_000100.png",
                                       "machine_step_000100_min.svg", "machine_step_000100_min.png"}
    with pytest.raises(CheckpointError, match="no extracted machine at step 7"):
        render.render_run(run, steps=[7])


def test_render_run_errors_are_one_line(tmp_path):
    run = write_synthetic_run(tmp_path / "run", n_checkpoints=6, depth=2)
    (run / "dynamics.json").unlink()
    with pytest.raises(CheckpointError, match="rnnautomata track"):
        render.render_run(run)
    RunDir(run).write_manifest(kind="icl")
    with pytest.raises(CheckpointError, match="'icl' run"):
        render.render_run(run)


def test_written_files_get_the_usual_permissions_and_no_temporary_files_stay(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        parity = Machine(("0", "1"), ("0", "1"), np.array([[0, 1], [1, 0]]), np.array([0, 1]), 0)
        parity.save(tmp_path / "m.json")
        written = render.draw_machine(parity, tmp_path / "fig" / "parity", formats=("svg", "png", "dot"))
        run = write_synthetic_run(tmp_path / "run", n_checkpoints=6, depth=3)
        fig_paths = render.plot_timeline(synthetic_dynamics(run), tmp_path / "fig" / "timeline")
    finally:
        os.umask(umask)
    for path in [tmp_path / "m.json", *written, *fig_paths]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # mkstemp's 0600 would hide them from others
    assert not [p for p in (tmp_path / "fig").iterdir() if p.name.startswith(".")]  # temporaries renamed or gone


def test_the_package_re_exports_every_public_name_of_its_modules():
    """``from rnnautomata.render import X`` keeps working for every name the modules export, and
    each name is the module's own object (not a copy that a monkeypatch would miss)."""
    import importlib

    for name in ("layout", "dot", "graphviz", "figures", "run"):
        module = importlib.import_module(f"rnnautomata.render.{name}")
        for public in module.__all__:
            assert public in render.__all__, f"render.{name}.{public} is not re-exported"
            assert getattr(render, public) is getattr(module, public), public
    assert all(hasattr(render, public) for public in render.__all__)


def test_save_figure_writes_the_same_bytes_twice_and_the_svg_undated(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    first = render.save_figure(fig, tmp_path / "a" / "f", ("svg", "png"))
    second = render.save_figure(fig, tmp_path / "b" / "f", ("svg", "png"))
    assert [p.name for p in first] == ["f.svg", "f.png"]
    svg = first[0].read_text()
    assert "<dc:date>" not in svg
    assert first[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # matplotlib's SVG ids are random unless svg.hashsalt is set; with it, the same figure is the same file
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "test"}):
        a = render.save_figure(fig, tmp_path / "c" / "f", ("svg",))[0].read_bytes()
        b = render.save_figure(fig, tmp_path / "d" / "f", ("svg",))[0].read_bytes()
    assert a == b
    assert first[1].read_bytes() == second[1].read_bytes()


def test_one_phase_palette_colours_every_phase_the_timeline_and_the_report_show():
    from rnnautomata import report
    from rnnautomata.dynamics import phases

    assert report.PHASE_COLOURS is render.PHASE_COLOURS
    # a run that starts finite, grows a tree, merges and closes has all four phases
    found = phases([0, 1, 2, 3, 4, 5], [1, 4, 9, 5, 2, 2], [True, False, False, False, True, True])
    assert [p["name"] for p in found] == ["initial", "tree", "merging", "finite"]
    assert {p["name"] for p in found} <= set(render.PHASE_COLOURS)

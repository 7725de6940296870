"""The figures of an automata run directory: merge snapshots, and everything by :func:`render_run`.

- :func:`open_run` opens an automata run directory (refusing other kinds); :func:`read_dynamics`
  and :func:`load_run_machine` read its dynamics.json and extracted machines.
- :func:`snapshot_steps` and :func:`draw_merge_snapshots`: the machine at a few checkpoints through
  the merge, with pinned positions, one file each and all in one grid.
- :func:`render_run`: all figures of a run into ``RUN/figures``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnautomata.automata import Machine
from rnnautomata.errors import CheckpointError
from rnnautomata.render import graphviz as gv
from rnnautomata.render.dot import DEFAULT_MAX_STATES, choose_drawn, styled_dot
from rnnautomata.render.figures import image_grid, plot_timeline
from rnnautomata.render.graphviz import draw_machine, write_dot_outputs
from rnnautomata.render.layout import PINNED_MAX_GAP, stable_positions
from rnnautomata.runs import RunDir

__all__ = [
    "draw_merge_snapshots",
    "load_run_machine",
    "open_run",
    "read_dynamics",
    "render_run",
    "snapshot_steps",
]


def open_run(run_dir: str | Path) -> RunDir:
    """The :class:`~rnnautomata.runs.RunDir` of an automata run directory.

    Raises
    ------
    CheckpointError
        If the folder holds another kind of run (whose figures its own study kind draws).
    """
    run = RunDir(Path(run_dir))
    manifest = run.read_manifest()
    if manifest.get("kind", "automata") != "automata":
        raise CheckpointError(f"{run.root} is a {manifest.get('kind')!r} run; its figures come from "
                              "its own module, not `render`")
    return run


def load_run_machine(run_dir: str | Path, step: int) -> Machine:
    """The extracted machine of a run at ``step`` (``automata/step_XXXXXX.json``).

    Raises
    ------
    CheckpointError
        If the run has no machine at that step.
    """
    run = RunDir(Path(run_dir))
    path = run.automaton_path(int(step))
    if not path.is_file():
        raise CheckpointError(f"{run.root} has no extracted machine at step {step}; "
                              f"run `rnnautomata track {run.root}` first")
    return Machine.load(path)


def read_dynamics(run_dir: str | Path) -> dict:
    """The run's dynamics.json, checked (:func:`rnnautomata.dynamics.read_dynamics`).

    Raises
    ------
    CheckpointError
        If the file is missing or not a current ``rnnautomata.dynamics/1`` dict.
    """
    from rnnautomata.dynamics import read_dynamics as read  # imported here: rendering needs no torch

    return read(run_dir)


def snapshot_steps(dynamics: Mapping[str, Any], n: int = 6) -> list[int]:
    """A few steps through the merge: start of the tree, the peak, the merging phase, the first
    finite step and the last checkpoint (at most ``n``, ascending)."""
    ck = dynamics["checkpoints"]
    steps = [c["step"] for c in ck]
    if not steps:
        return []
    chosen = {steps[0], steps[-1]}
    counts = [c["n_states"] for c in ck]
    peak = int(np.argmax(counts))
    chosen.add(steps[peak])
    ff = dynamics.get("finite_from_step")
    if ff is not None:
        chosen.add(ff)
    end = steps.index(ff) if ff in steps else len(steps) - 1
    for frac in (0.33, 0.66):  # inside the merge: where the count has fallen by about a third/two
        target = counts[peak] - frac * (counts[peak] - counts[end])
        later = [i for i in range(peak, end + 1) if counts[i] <= target]
        if later:
            chosen.add(steps[later[0]])
    for phase in dynamics.get("phases", []):
        if phase["name"] == "tree":
            chosen.add(phase["start_step"])
    ordered = sorted(chosen)
    if len(ordered) > n:  # keep the first, the peak, the first finite and the last; thin the rest
        keep = {steps[0], steps[-1], steps[peak], ff}
        rest = [s for s in ordered if s not in keep]
        ordered = sorted((keep - {None}) | set(rest[: max(0, n - len(keep - {None}))]))
    return ordered


def draw_merge_snapshots(
    run_dir: str | Path,
    steps: Sequence[int] | None = None,
    *,
    out_dir: str | Path | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    formats: Sequence[str] = ("svg", "png"),
) -> list[Path]:
    """Drawings of the machine at a few checkpoints through the merge, with pinned positions.

    Writes ``snapshot_step_XXXXXX.<fmt>`` per step and ``merge_snapshots.png/.svg`` (all of them in a
    grid) into ``out_dir`` (default ``RUN/figures``). In the grid, each panel is titled by
    matplotlib at a fixed, readable size, one legend of the output colours serves all panels, and
    a drawing is shown at its natural size (labels at 10 pt), shrunk only when it would not fit.

    Parameters
    ----------
    steps : sequence of int, optional
        Default :func:`snapshot_steps` of the run's dynamics.

    Returns
    -------
    list of Path
    """
    run = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.figures_dir
    out.mkdir(parents=True, exist_ok=True)
    dyn = read_dynamics(run.root) if steps is None or run.dynamics_path.is_file() else None
    if steps is None:
        steps = snapshot_steps(dyn)
    by_step = {c["step"]: c for c in dyn["checkpoints"]} if dyn else {}
    machines = [load_run_machine(run.root, s) for s in steps]
    shown = [choose_drawn(m, max_states) for m in machines]
    positions = stable_positions([s for s, _, _ in shown], max_gap=PINNED_MAX_GAP)
    written: list[Path] = []
    panels, titles = [], []
    for step, machine, (drawn, note, compact), pos in zip(steps, machines, shown, positions):
        title = _machine_title(step, machine, by_step.get(step))
        dot = styled_dot(drawn, pos, "\n".join(t for t in (title, note) if t), compact)
        written += write_dot_outputs(dot, out / f"snapshot_step_{step:06d}", formats)
        panels.append(styled_dot(drawn, pos, "", compact, legend=False))  # the grid titles it
        titles.append(title + ("\n" + note.split(" (")[0] if note else ""))
    if gv.graphviz_binary() is not None and panels:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pngs = [p for i, dot in enumerate(panels)
                    for p in write_dot_outputs(dot, Path(tmp) / f"panel_{i}", ("png",)) if p.suffix == ".png"]
            if len(pngs) == len(panels):
                outputs = machines[0].outputs if machines else ()
                written += image_grid(pngs, out / "merge_snapshots", titles=titles, outputs=outputs)
    return written


def _machine_title(step: int, machine: Machine, entry: Mapping[str, Any] | None) -> str:
    finite = machine.meta.get("finite") if entry is None else entry.get("finite")
    n_min = machine.meta.get("n_states_min") if entry is None else entry.get("n_states_min")
    parts = [f"step {step}", f"{machine.n_states} states"]
    if n_min is not None:
        parts.append(f"{n_min} minimised")
    if finite is not None:
        parts.append("finite" if finite else "not finite")
    return " · ".join(parts)



def render_run(run_dir: str | Path, steps: Sequence[int] | None = None, *,
               max_states: int = DEFAULT_MAX_STATES) -> list[Path]:
    """All figures of a run into ``RUN/figures``.

    With ``steps``: the machine at each of those checkpoints (``machine_step_XXXXXX``, the
    extracted machine, and ``machine_step_XXXXXX_min``, minimised). Without: the timeline, the merge
    history, snapshots through the merge and the final machine (extracted and minimised).

    Returns
    -------
    list of Path
        The files written (``.dot`` files where graphviz is missing).

    Raises
    ------
    CheckpointError
        If the run directory, its dynamics.json (needed without ``steps``) or a machine is missing.
    """
    run = open_run(run_dir)
    figures = run.figures_dir
    figures.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if steps is not None:
        for step in steps:
            machine = load_run_machine(run.root, step)
            title = _machine_title(step, machine, None)
            written += draw_machine(machine, figures / f"machine_step_{step:06d}", title=title,
                                    max_states=max_states)
            written += draw_machine(machine.minimize(), figures / f"machine_step_{step:06d}_min",
                                    title=f"step {step} · minimised", max_states=max_states)
        return written

    from rnnautomata.history import draw_merge_history, merge_history_graph

    dyn = read_dynamics(run.root)
    name = run.root.name
    written += plot_timeline(dyn, figures / "timeline", title=f"{name}: merge timeline")
    written += draw_merge_history(merge_history_graph(dyn), figures / "merge_history",
                                  title=f"{name}: merge history")
    written += draw_merge_snapshots(run.root, max_states=max_states)
    last = dyn["checkpoints"][-1]["step"]
    machine = load_run_machine(run.root, last)
    entry = dyn["checkpoints"][-1]
    written += draw_machine(machine, figures / "final_machine",
                            title=_machine_title(last, machine, entry) + " (extracted)", max_states=max_states)
    written += draw_machine(machine.minimize(), figures / "final_machine_min",
                            title=f"step {last} · minimised", max_states=max_states)
    return written

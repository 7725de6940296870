"""Pictures of machines and of their merge dynamics: graphviz drawings and matplotlib figures.

- :func:`machine_dot` turns a :class:`~rnnautomata.automata.Machine` into styled DOT: the start
  state has an arrow and a thick outline, states are filled by output, parallel transitions share
  one edge labelled ``"0,1"``, open (``-1``) transitions end in a dashed stub, a prefix tree is laid
  out left to right by depth. Machines with more than ``max_states`` states are drawn minimised
  (the title says so), or as unlabelled points when even that is too big. Above
  :data:`SCALABLE_LAYOUT_STATES` states (trees excepted) ``sfdp`` lays the machine out instead of
  ``dot``, with straight edges coloured by symbol (:func:`layout_engine`).
- :func:`stable_positions` pins states across checkpoints: every state sits where its access
  string (shortest, then lexicographically first string that reaches it) sits in one tidy prefix
  tree laid out for all the machines together. A merged state keeps the place of the state whose
  access string it inherits, so a reader sees states disappear into others instead of jumping.
  ``max_gap`` closes up the empty space a small machine has in the union's layout.
- :func:`draw_machine` writes SVG/PNG with the graphviz ``dot`` binary; without it, a ``.dot`` file
  and a one-line notice.
- :func:`plot_timeline` (one run) and :func:`plot_timeline_seeds` (median and IQR over seeds):
  losses, merged and minimised state counts and long-length accuracy against the training step,
  phases shaded, merge events and the first-finite step marked.
- :func:`draw_merge_snapshots` and :func:`render_run`: the figures of a run directory.

Example
-------
>>> parity = Machine.from_function(("0", "1"), ("even", "odd"), 2,
...                                delta=lambda q, a: q ^ a, out=lambda q: q)
>>> draw_machine(parity, "figures/parity")            # doctest: +SKIP
[PosixPath('figures/parity.svg'), PosixPath('figures/parity.png')]
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnautomata.automata import Machine
from rnnautomata.errors import CheckpointError
from rnnautomata.runs import atomic_savefig, atomic_write_text

__all__ = [
    "DEFAULT_MAX_STATES",
    "SCALABLE_LAYOUT_STATES",
    "OUTPUT_COLOURS",
    "layout_engine",
    "access_strings",
    "is_tree",
    "stable_positions",
    "machine_dot",
    "draw_machine",
    "dot_to_svgs",
    "graphviz_binary",
    "plot_timeline",
    "plot_timeline_seeds",
    "draw_merge_snapshots",
    "snapshot_steps",
    "load_run_machine",
    "render_run",
]

#: Machines with more states than this are drawn minimised (and the title says so).
DEFAULT_MAX_STATES = 200

#: Machines (other than prefix trees) with more states than this are laid out by graphviz ``sfdp``
#: (force-directed, straight unlabelled edges coloured by symbol) instead of ``dot``, whose
#: layered layout took 1.4 s at 100 states, 4.8 s at 150 and over 2 minutes at 300.
SCALABLE_LAYOUT_STATES = 100

#: Fill colours of states by output id (cycled); unknown outputs are drawn white.
OUTPUT_COLOURS = ("#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fc9272", "#d9d9d9", "#c7e9c0",
                  "#fdd0a2", "#dadaeb", "#9e9ac8")
_UNKNOWN_COLOUR = "#ffffff"
#: Edge colours by input symbol in the sfdp layout (edges there carry no labels); an edge taken on
#: several symbols is grey. Alphabets larger than this are drawn all grey.
_SYMBOL_COLOURS = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#8c564b", "#e377c2")
_SEVERAL_SYMBOLS = "#999999"
_PHASE_COLOURS = {"initial": "#bdbdbd", "tree": "#fdae6b", "merging": "#9ecae1", "finite": "#a1d99b"}

RANK_SEP = 1.1  # inches between depths in a pinned prefix-tree layout
NODE_SEP = 0.55  # inches between neighbouring leaves
#: ``max_gap`` (inches) of the pinned drawings in the report and the merge snapshots: empty space
#: the union prefix tree leaves between a small machine's states is closed up to this.
PINNED_MAX_GAP = 2 * NODE_SEP

_notice_given = False


# ----------------------------------------------------------------------------- structure
def access_strings(machine: Machine) -> dict[int, tuple[int, ...]]:
    """The shortest (then lexicographically first) string reaching each reachable state.

    Returns
    -------
    dict
        state id -> tuple of symbol ids; the start state maps to ``()``. Unreachable states are
        absent. The strings are prefix-closed (a breadth-first spanning tree).
    """
    found = {machine.start: ()}
    frontier = [machine.start]
    transitions = machine.transitions
    while frontier:
        nxt = []
        for state in frontier:
            for symbol in range(machine.n_symbols):
                target = int(transitions[state, symbol])
                if target >= 0 and target not in found:
                    found[target] = found[state] + (symbol,)
                    nxt.append(target)
        frontier = nxt
    return found


def is_tree(machine: Machine) -> bool:
    """True when the reachable part is a tree rooted at the start (no state entered twice)."""
    reach = access_strings(machine)
    entered = 0
    for state in reach:
        row = machine.transitions[state]
        entered += int((row >= 0).sum())
    return entered == len(reach) - 1


def _tree_layout(strings: set[tuple[int, ...]], rank_sep: float, node_sep: float) -> dict:
    """Tidy left-to-right layout of a prefix-closed set of strings: leaves evenly spaced,
    a parent midway between its first and last child. Returns string -> (x, y) in inches."""
    ordered = sorted(strings)  # lexicographic order of tuples = depth-first order
    children: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for s in ordered:
        if s:
            children.setdefault(s[:-1], []).append(s)
    y: dict[tuple[int, ...], float] = {}
    slot = 0
    for s in ordered:
        if s not in children:
            y[s] = -slot * node_sep
            slot += 1
    for s in sorted(strings, key=len, reverse=True):
        if s in children:
            kids = children[s]
            y[s] = (y[kids[0]] + y[kids[-1]]) / 2
    return {s: (len(s) * rank_sep, y[s]) for s in strings}


def _close_gaps(values: Sequence[float], max_gap: float) -> dict[float, float]:
    """Each distinct value -> a new one: order kept, the smallest kept, every gap between
    neighbouring values shrunk to at most ``max_gap``."""
    ordered = sorted(set(values))
    out = {ordered[0]: ordered[0]}
    for low, high in zip(ordered, ordered[1:]):
        out[high] = out[low] + min(high - low, max_gap)
    return out


def stable_positions(machines: Sequence[Machine], *, rank_sep: float = RANK_SEP,
                     node_sep: float = NODE_SEP,
                     max_gap: float | None = None) -> list[dict[int, tuple[float, float]]]:
    """Positions that stay put from one machine (checkpoint) to the next.

    All machines' access strings are laid out as one prefix tree (depth left to right); each state
    is placed where its access string is. Unreachable states go in a column right of the tree.

    A machine much smaller than the union (two states, when a later checkpoint has hundreds) then
    sits on a canvas sized for the union, its states far apart. With ``max_gap``, each machine's
    empty space is closed up: gaps between its occupied rows wider than ``max_gap`` shrink to
    ``max_gap`` (and between columns, to ``1.5 * rank_sep``). States keep their order, and their
    relative places wherever the drawing is dense, so merges still read as states vanishing.

    Parameters
    ----------
    machines : sequence of Machine
        Over one alphabet, e.g. the machines of consecutive checkpoints.
    rank_sep, node_sep : float
        Inches between depths and between neighbouring leaves.
    max_gap : float, optional
        Inches; see above. None (the default) keeps the union's coordinates exactly.

    Returns
    -------
    list of dict
        One ``{state id: (x, y)}`` (inches) per machine, every state placed.
    """
    accesses = [access_strings(m) for m in machines]
    union: set[tuple[int, ...]] = {()}
    for acc in accesses:
        for s in acc.values():
            union.update(s[:i] for i in range(len(s) + 1))
    layout = _tree_layout(union, rank_sep, node_sep)
    max_x = max(x for x, _ in layout.values())
    out = []
    for machine, acc in zip(machines, accesses):
        pos = {state: layout[s] for state, s in acc.items()}
        extra = [q for q in range(machine.n_states) if q not in pos]
        for i, q in enumerate(extra):
            pos[q] = (max_x + 1.5 * rank_sep, -i * node_sep)
        if max_gap is not None:
            new_x = _close_gaps([x for x, _ in pos.values()], 1.5 * rank_sep)
            new_y = _close_gaps([y for _, y in pos.values()], max_gap)
            pos = {q: (new_x[x], new_y[y]) for q, (x, y) in pos.items()}
        out.append(pos)
    return out


# ----------------------------------------------------------------------------- DOT
def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _colour(output: int) -> str:
    return _UNKNOWN_COLOUR if output < 0 else OUTPUT_COLOURS[output % len(OUTPUT_COLOURS)]


def _title_label(title: str | None, machine: Machine, legend: bool,
                 edge_legend: bool = False) -> str | None:
    """An HTML-like graph label: the title, a colour legend of the outputs and, for the
    unlabelled edges of the sfdp layout, one of the input symbols."""
    rows = []
    if title:
        lines = "<br/>".join(html.escape(line) for line in title.split("\n"))
        rows.append(f"<tr><td>{lines}</td></tr>")
    if legend:
        used = set(machine.output_of_state.tolist())
        cells = ['<td><font point-size="10">output:</font></td>']
        for i, label in enumerate(machine.outputs):
            if i in used:
                cells.append(f'<td bgcolor="{_colour(i)}" width="10" height="10" fixedsize="true" border="1"></td>'
                             f'<td align="left"><font point-size="10">{html.escape(label)}</font></td>')
        if -1 in used:
            cells.append(f'<td bgcolor="{_UNKNOWN_COLOUR}" width="10" height="10" fixedsize="true" border="1"></td>'
                         '<td align="left"><font point-size="10">unknown</font></td>')
        rows.append('<tr><td><table border="0" cellborder="0" cellspacing="2"><tr>'
                    + "".join(cells) + "</tr></table></td></tr>")
    if edge_legend:
        cells = ['<td><font point-size="10">edge on:</font></td>']
        for a, symbol in enumerate(machine.alphabet):
            cells.append(f'<td><font point-size="10" color="{_symbol_colour(machine, [a])}">'
                         f'<b>&#8212; {html.escape(symbol)}</b></font></td>')
        cells.append(f'<td><font point-size="10" color="{_SEVERAL_SYMBOLS}"><b>&#8212; several</b></font></td>')
        rows.append('<tr><td><table border="0" cellborder="0" cellspacing="2"><tr>'
                    + "".join(cells) + "</tr></table></td></tr>")
    if not rows:
        return None
    return '<<table border="0" cellborder="0" cellspacing="2">' + "".join(rows) + "</table>>"


def _symbol_colour(machine: Machine, symbols: Sequence[int]) -> str:
    if len(symbols) == 1 and machine.n_symbols <= len(_SYMBOL_COLOURS):
        return _SYMBOL_COLOURS[symbols[0]]
    return _SEVERAL_SYMBOLS


def layout_engine(machine: Machine, positions: Mapping[int, tuple[float, float]] | None = None) -> str:
    """The graphviz layout :func:`machine_dot` uses for ``machine`` as drawn.

    ``"neato"`` when positions are pinned; ``"sfdp"`` for a machine with more than
    :data:`SCALABLE_LAYOUT_STATES` states that is not a prefix tree; ``"dot"`` otherwise (trees
    stay layered by depth: ``dot`` lays out even a 1,023-state tree in seconds).
    """
    if positions is not None:
        return "neato"
    if machine.n_states > SCALABLE_LAYOUT_STATES and not is_tree(machine):
        return "sfdp"
    return "dot"


def _choose_drawn(machine: Machine, max_states: int) -> tuple[Machine, str | None, bool]:
    """The machine to draw, a note for the title, and whether to draw it without labels."""
    if machine.n_states <= max_states:
        return machine, None, False
    minimal = machine.minimize()
    note = f"minimised: {minimal.n_states} of {machine.n_states} extracted states (too many to draw)"
    if minimal.n_states <= max_states:
        return minimal, note, False
    return minimal, note + "; drawn without labels", True


def _positions_through(machine: Machine, shown: Machine,
                       positions: Mapping[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Map positions of ``machine``'s states onto the states of its minimised ``shown``: each
    minimised state goes where the extracted state reached by its access string is."""
    out = {}
    for state, string in access_strings(shown).items():
        q = machine.start
        for symbol in string:
            q = int(machine.transitions[q, symbol])
            if q < 0:
                break
        if q >= 0 and q in positions:
            out[state] = positions[q]
    return out


def machine_dot(
    machine: Machine,
    *,
    positions: Mapping[int, tuple[float, float]] | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    title: str | None = None,
    name: str = "machine",
) -> str:
    """Styled DOT text of a machine.

    Parameters
    ----------
    machine : Machine
        Any machine; open (-1) transitions are drawn as dashed stubs, unknown outputs white.
    positions : mapping, optional
        ``{state: (x, y)}`` in inches (e.g. from :func:`stable_positions`). Given, the nodes are
        pinned there (graphviz ``neato``, ``pos="x,y!"``); otherwise ``dot`` lays the machine out
        left to right, which ranks a prefix tree by depth, or, above
        :data:`SCALABLE_LAYOUT_STATES` states (trees excepted), ``sfdp`` places it force-directed
        with straight edges coloured by symbol instead of labelled (see :func:`layout_engine`).
    max_states : int
        Above this many states the minimised machine is drawn, with a note in the title; if that is
        still too big, it is drawn as unlabelled points.
    title : str, optional
        Shown above the drawing, with a legend of the output colours.
    name : str
        The DOT graph name.

    Returns
    -------
    str
        DOT text. Node ``sN`` is state N; ``__start`` and ``open_N_A`` are drawing helpers.
    """
    shown, note, compact = _choose_drawn(machine, max_states)
    if positions is not None and shown is not machine:
        positions = _positions_through(machine, shown, positions)
    full_title = "\n".join(t for t in (title, note) if t)
    return _styled_dot(shown, positions, full_title, compact, name)


def _styled_dot(shown: Machine, positions: Mapping[int, tuple[float, float]] | None,
                full_title: str, compact: bool, name: str = "machine", legend: bool = True) -> str:
    """DOT of ``shown`` as it is (no size fallback); see :func:`machine_dot`. ``legend=False``
    leaves out the colour legends (a figure that draws its own)."""
    if positions is not None:
        missing = [q for q in range(shown.n_states) if q not in positions]
        if missing:
            positions = dict(positions)
            xs = [p[0] for p in positions.values()] or [0.0]
            for i, q in enumerate(missing):
                positions[q] = (max(xs) + 1.5 * RANK_SEP, -i * NODE_SEP)
    access = access_strings(shown)
    engine = layout_engine(shown, positions)
    tree = engine == "dot" and is_tree(shown)
    scalable = engine == "sfdp"

    lines = [f"digraph {_q(name)} {{"]
    graph_attrs = ['fontname="Helvetica"', "labelloc=t", 'bgcolor="white"', "outputorder=edgesfirst"]
    if positions is not None:
        graph_attrs += ["layout=neato", "overlap=true", "splines=" + ("true" if shown.n_states <= 30 else "false")]  # curved/true take minutes on big graphs
    elif scalable:  # force-directed; overlap removal and straight edges keep it to seconds
        graph_attrs += ["layout=sfdp", "overlap=prism", "splines=false", "K=0.6", "repulsiveforce=1.5"]
    else:
        graph_attrs += ["rankdir=LR", "nodesep=0.15" if tree else "nodesep=0.3",
                        "ranksep=0.5" if tree else "ranksep=0.45"]
    label = _title_label(full_title, shown, legend=legend and not compact, edge_legend=legend and scalable)
    if label:
        graph_attrs.append(f"label={label}")
    lines.append("  graph [" + ", ".join(graph_attrs) + "];")
    if compact:
        lines.append('  node [shape=point, width=0.09, color="#555555"];')
        lines.append('  edge [arrowsize=0.3, penwidth=0.5, color="#888888"];')
    else:
        lines.append('  node [shape=circle, style=filled, fixedsize=true, width=0.42, '
                     'fontname="Helvetica", fontsize=10, color="#333333"];')
        lines.append('  edge [fontname="Helvetica", fontsize=9, arrowsize=0.6, color="#444444"];')

    def pos_attr(x: float, y: float) -> str:
        return f', pos="{x:.3f},{y:.3f}!"'

    for q in range(shown.n_states):
        out = int(shown.output_of_state[q])
        out_label = shown.outputs[out] if out >= 0 else "?"
        reach = access.get(q)
        where = ("reached by '" + "".join(shown.alphabet[a] for a in reach) + "'" if reach else
                 "the start" if reach == () else "unreachable")
        attrs = [f'tooltip={_q(f"state {q}: output {out_label}; {where}")}']
        if compact:
            attrs.append(f'color="{_colour(out) if out >= 0 else "#555555"}"')
        else:
            attrs += [f"label={_q(q)}", f'fillcolor="{_colour(out)}"']
            if reach is None:
                attrs.append('style="filled,dashed"')
        if q == shown.start:
            attrs.append("penwidth=2.5")
        attr = ", ".join(attrs)
        if positions is not None:
            attr += pos_attr(*positions[q])
        lines.append(f"  s{q} [{attr}];")

    start_attr = 'shape=point, width=0.06, color="#333333", label=""'
    if positions is not None:
        x, y = positions[shown.start]
        start_attr += pos_attr(x - 0.6, y)
    lines.append(f"  __start [{start_attr}];")
    lines.append(f"  __start -> s{shown.start} [penwidth=1.5];")

    for q in range(shown.n_states):
        targets: dict[int, list[int]] = {}
        for a in range(shown.n_symbols):
            t = int(shown.transitions[q, a])
            if t >= 0:
                targets.setdefault(t, []).append(a)
        for t, ids in targets.items():
            symbols = [shown.alphabet[a] for a in ids]
            if scalable:
                tip = _q(f"{q} -> {t} on {','.join(symbols)}")
                lines.append(f'  s{q} -> s{t} [color="{_symbol_colour(shown, ids)}", tooltip={tip}];')
            elif compact:
                lines.append(f"  s{q} -> s{t};")
            else:
                lines.append(f"  s{q} -> s{t} [label={_q(','.join(symbols))}];")
        if compact:
            continue
        open_symbols = [a for a in range(shown.n_symbols) if shown.transitions[q, a] < 0]
        for j, a in enumerate(open_symbols):
            stub = f"open_{q}_{a}"
            attr = 'shape=point, width=0.03, color="#aaaaaa", label=""'
            if positions is not None:
                x, y = positions[q]
                offset = ((len(open_symbols) - 1) / 2 - j) * 0.2  # symbol 0 on top, as in the tree
                attr += pos_attr(x + 0.55, y + offset)
            lines.append(f"  {stub} [{attr}, tooltip={_q(f'open: state {q} on {shown.alphabet[a]}')}];")
            stub_label = "" if scalable else f", label={_q(shown.alphabet[a])}"
            lines.append(f'  s{q} -> {stub} [style=dashed, color="#aaaaaa", fontcolor="#888888", '
                         f"arrowhead=none{stub_label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- graphviz
GRAPHVIZ_TIMEOUT_S = 60  # per drawing; a slower one is written as .dot with a notice


def _graphviz(args: list[str], dot: str) -> subprocess.CompletedProcess:
    """Run graphviz on one graph; if it fails (its spline router can crash on pinned layouts),
    retry once with straight edges."""
    proc = subprocess.run(args, input=dot.encode(), capture_output=True, timeout=GRAPHVIZ_TIMEOUT_S)
    if proc.returncode != 0 and "splines=true" in dot:
        proc = subprocess.run(args, input=dot.replace("splines=true", "splines=false").encode(),
                              capture_output=True, timeout=GRAPHVIZ_TIMEOUT_S)
    return proc


def graphviz_binary() -> str | None:
    """Path of the graphviz ``dot`` binary, or None when it is not installed."""
    return shutil.which("dot")


def _notice(message: str) -> None:
    """Print a one-line notice to stderr, once per process."""
    global _notice_given
    if not _notice_given:
        print(f"notice: {message}", file=sys.stderr)
        _notice_given = True


_MISSING = ("graphviz `dot` not found: wrote .dot files instead of pictures "
            "(install graphviz, e.g. `apt-get install graphviz`, to get SVG/PNG)")


def draw_machine(
    machine: Machine,
    path_stem: str | Path,
    formats: Sequence[str] = ("svg", "png"),
    *,
    positions: Mapping[int, tuple[float, float]] | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    title: str | None = None,
) -> list[Path]:
    """Draw a machine to ``<path_stem>.svg`` / ``.png`` (any graphviz output format).

    Without the graphviz binary (or if it fails) writes ``<path_stem>.dot`` instead and prints a
    one-line notice; it never raises for that.

    Returns
    -------
    list of Path
        The files written.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    dot = machine_dot(machine, positions=positions, max_states=max_states, title=title)
    return _write_dot_outputs(dot, stem, formats)


def _write_dot_outputs(dot: str, stem: Path, formats: Sequence[str]) -> list[Path]:
    written = []
    wanted = [f for f in formats if f != "dot"]
    if "dot" in formats or not wanted:
        written.append(_write_text(stem.with_suffix(".dot"), dot))
    if not wanted:
        return written
    binary = graphviz_binary()
    if binary is None:
        _notice(_MISSING)
        return written or [_write_text(stem.with_suffix(".dot"), dot)]
    args = [binary]
    temps = {fmt: stem.parent / f".{stem.name}.{fmt}.tmp" for fmt in wanted}  # renamed into place once whole
    for fmt in wanted:
        args += [f"-T{fmt}", f"-o{temps[fmt]}"]
    try:
        try:
            proc = _graphviz(args, dot)
            if proc.returncode == 0:
                for fmt, tmp in temps.items():
                    os.replace(tmp, stem.with_suffix("." + fmt))
        finally:
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
    except subprocess.TimeoutExpired:
        _notice(f"graphviz took over {GRAPHVIZ_TIMEOUT_S} s on {stem.name}; wrote {stem.with_suffix('.dot')} instead")
        return written or [_write_text(stem.with_suffix(".dot"), dot)]
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[0]
        _notice(f"graphviz failed ({first}); wrote {stem.with_suffix('.dot')} instead")
        return written or [_write_text(stem.with_suffix(".dot"), dot)]
    return written + [stem.with_suffix("." + fmt) for fmt in wanted]


def _write_text(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)


_SVG_START = re.compile(r"<\?xml[^>]*\?>")


def _clean_svg(svg: str) -> str:
    """Drop the XML prolog, DOCTYPE and comments (for inlining in HTML)."""
    svg = _SVG_START.sub("", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


def dot_to_svgs(dots: Sequence[str], *, progress: bool = False, chunk: int = 40) -> list[str | None]:
    """Render many DOT texts to SVG text with few graphviz processes (one per ``chunk`` graphs).

    Returns
    -------
    list
        One cleaned SVG string per input (no XML prolog or comments, ready to inline in HTML), or
        None for every input when graphviz is missing (after a one-line notice) and for a graph
        that graphviz rejected.
    """
    binary = graphviz_binary()
    if binary is None:
        _notice(_MISSING)
        return [None] * len(dots)
    out: list[str | None] = []
    starts = range(0, len(dots), chunk)
    if progress and len(dots) > chunk:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="drawing", unit="batch", total=(len(dots) + chunk - 1) // chunk)
    for begin in starts:
        batch = list(dots[begin:begin + chunk])
        try:
            proc = subprocess.run([binary, "-Tsvg"], input="".join(batch).encode(), capture_output=True,
                                  timeout=GRAPHVIZ_TIMEOUT_S * len(batch))
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess([], 1, b"", b"timeout")
        pieces = _SVG_START.split(proc.stdout.decode(errors="replace"))[1:]
        if proc.returncode == 0 and len(pieces) == len(batch):
            out += [_clean_svg(p) for p in pieces]
            continue
        for dot in batch:  # one at a time, so one bad graph does not lose the others
            try:
                single = _graphviz([binary, "-Tsvg"], dot)
            except subprocess.TimeoutExpired:
                out.append(None)
                continue
            out.append(_clean_svg(single.stdout.decode(errors="replace")) if single.returncode == 0 else None)
    return out


# ----------------------------------------------------------------------------- run directory
def _run(run_dir: str | Path):
    from rnnautomata.runs import RunDir

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
    from rnnautomata.runs import RunDir

    run = RunDir(Path(run_dir))
    path = run.automaton_path(int(step))
    if not path.is_file():
        raise CheckpointError(f"{run.root} has no extracted machine at step {step}; "
                              f"run `rnnautomata track {run.root}` first")
    return Machine.load(path)


def _read_dynamics(run_dir: str | Path) -> dict:
    from rnnautomata.dynamics import read_dynamics  # downstream of dynamics: reading its file is fine

    return read_dynamics(run_dir)


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
    run = _run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.figures_dir
    out.mkdir(parents=True, exist_ok=True)
    dyn = _read_dynamics(run.root) if steps is None or run.dynamics_path.is_file() else None
    if steps is None:
        steps = snapshot_steps(dyn)
    by_step = {c["step"]: c for c in dyn["checkpoints"]} if dyn else {}
    machines = [load_run_machine(run.root, s) for s in steps]
    shown = [_choose_drawn(m, max_states) for m in machines]
    positions = stable_positions([s for s, _, _ in shown], max_gap=PINNED_MAX_GAP)
    written: list[Path] = []
    panels, titles = [], []
    for step, machine, (drawn, note, compact), pos in zip(steps, machines, shown, positions):
        title = _machine_title(step, machine, by_step.get(step))
        dot = _styled_dot(drawn, pos, "\n".join(t for t in (title, note) if t), compact)
        written += _write_dot_outputs(dot, out / f"snapshot_step_{step:06d}", formats)
        panels.append(_styled_dot(drawn, pos, "", compact, legend=False))  # the grid titles it
        titles.append(title + ("\n" + note.split(" (")[0] if note else ""))
    if graphviz_binary() is not None and panels:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pngs = [p for i, dot in enumerate(panels)
                    for p in _write_dot_outputs(dot, Path(tmp) / f"panel_{i}", ("png",)) if p.suffix == ".png"]
            if len(pngs) == len(panels):
                outputs = machines[0].outputs if machines else ()
                written += _image_row(pngs, out / "merge_snapshots", titles=titles, outputs=outputs)
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


def _image_row(pngs: Sequence[Path], stem: Path, *, titles: Sequence[str] | None = None,
               outputs: Sequence[str] = ()) -> list[Path]:
    """Place PNG drawings (graphviz, 96 dpi) in a grid of one matplotlib figure (PNG and SVG).

    Two columns for up to four drawings, else three. Each panel is titled at 12 pt; a drawing is
    shown at its natural size, shrunk only to fit its panel (never enlarged: a two-state machine
    stays as small as it is). ``outputs`` adds one legend of the output colours under the grid.
    """
    from matplotlib.figure import Figure
    from matplotlib.image import imread
    from matplotlib.patches import Patch

    images = [imread(p) for p in pngs]
    n_cols = min(2 if len(images) <= 4 else 3, len(images))
    n_rows = -(-len(images) // n_cols)
    panel_w, panel_h, title_h, legend_h = 6.0, 5.5, 0.6, 0.5 if outputs else 0.0  # inches
    fig = Figure(figsize=(panel_w * n_cols, (panel_h + title_h) * n_rows + legend_h), dpi=100)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for i, (ax, im) in enumerate(zip(axes, images)):
        height, width = im.shape[0] / 96, im.shape[1] / 96  # inches at graphviz's 96 dpi
        scale = min(1.0, panel_w / width, panel_h / height)
        # axes span the whole panel; pad the data limits so that the image keeps that scale
        span_x, span_y = panel_w / scale * 96, panel_h / scale * 96  # pixels of the image the panel shows
        ax.imshow(im, interpolation="antialiased")
        ax.set_xlim((im.shape[1] - span_x) / 2, (im.shape[1] + span_x) / 2)
        ax.set_ylim((im.shape[0] + span_y) / 2, (im.shape[0] - span_y) / 2)
        if titles is not None:
            ax.set_title(titles[i], fontsize=12, pad=6)
    if outputs:
        handles = [Patch(facecolor=_colour(i), edgecolor="#333333", label=label) for i, label in enumerate(outputs)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles) + 1, fontsize=11, frameon=False,
                   title="output", title_fontsize=11, bbox_to_anchor=(0.5, 0.0))
    total_h = (panel_h + title_h) * n_rows + legend_h
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.55 / total_h, bottom=(legend_h + 0.05) / total_h,
                        wspace=0.05, hspace=title_h / panel_h)
    paths = []
    for fmt in ("png", "svg"):
        path = stem.with_suffix("." + fmt)
        atomic_savefig(fig, path, dpi=150 if fmt == "png" else 100, metadata=_no_date(fmt))
        paths.append(path)
    return paths


def _no_date(fmt: str) -> dict:
    return {"Date": None} if fmt == "svg" else {}


# ----------------------------------------------------------------------------- timelines
def _series(ck: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if c.get(key) is None else float(c[key]) for c in ck], dtype=float)


def _acc_series(ck: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    lengths = sorted({k for c in ck for k in (c.get("acc_by_length") or {})}, key=lambda k: int(k))
    return {k: np.array([np.nan if (c.get("acc_by_length") or {}).get(k) is None
                         else float(c["acc_by_length"][k]) for c in ck]) for k in lengths}


def _shade_phases(axes, phases: Sequence[Mapping[str, Any]], label_ax=None) -> None:
    for phase in phases:
        colour = _PHASE_COLOURS.get(phase["name"], "#eeeeee")
        for ax in axes:
            ax.axvspan(phase["start_step"], phase["end_step"], color=colour, alpha=0.18, lw=0)
        if label_ax is not None:
            label_ax.text((phase["start_step"] + phase["end_step"]) / 2, 1.01, phase["name"],
                          transform=label_ax.get_xaxis_transform(), ha="center", va="bottom",
                          fontsize=8, color="#444444")


def _plain_log_axis(ax) -> None:
    """Label a log y axis with plain numbers (0.25, 2, 100) instead of powers of ten; minor
    ticks at 2, 3 and 5 times a power of ten are labelled when the axis spans under 1.5 decades."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def minor(value: float, _) -> str:
        mantissa = value / 10 ** np.floor(np.log10(value) + 1e-9)
        return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""

    low, high = ax.get_ylim()
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor) if high / max(low, 1e-300) < 30 else NullFormatter())


def _save(fig, path_stem: str | Path, formats: Sequence[str]) -> list[Path]:
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        atomic_savefig(fig, path, dpi=150, metadata=_no_date(fmt))
        paths.append(path)
    return paths


def plot_timeline(
    dynamics: Mapping[str, Any],
    path_stem: str | Path,
    formats: Sequence[str] = ("svg", "png"),
    *,
    title: str | None = None,
    xscale: str = "linear",
) -> list[Path]:
    """The merge timeline of one run, in stacked panels sharing the step axis.

    Top: train and validation loss (log scale). Middle: merged and minimised number of states (log
    scale), merge events as markers sized by the number of states that merged. Bottom (when the
    run has them): the network's accuracy on long strings. Phases are shaded and the step from
    which the machine stays finite is a dashed line.

    Parameters
    ----------
    dynamics : dict
        A ``rnnautomata.dynamics/1`` dict (dynamics.json).
    path_stem : path
        Files ``<path_stem>.svg`` and ``.png`` (``formats``) are written.
    xscale : str
        Matplotlib x scale, e.g. ``"linear"`` or ``"symlog"`` (early log-spaced checkpoints).

    Returns
    -------
    list of Path
    """
    from matplotlib.figure import Figure

    ck = dynamics["checkpoints"]
    steps = np.array([c["step"] for c in ck], dtype=float)
    acc = _acc_series(ck)
    n_panels = 3 if acc else 2
    fig = Figure(figsize=(9, 2.4 * n_panels + 0.6), dpi=100)
    axes = fig.subplots(n_panels, 1, sharex=True, gridspec_kw={"hspace": 0.12})
    ax_loss, ax_states = axes[0], axes[1]

    for key, label, colour in (("train_loss", "train loss", "#1f77b4"), ("val_loss", "validation loss", "#d62728")):
        y = _series(ck, key)
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax_loss.plot(steps[ok], y[ok], color=colour, lw=1.4, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")

    n_states = _series(ck, "n_states")
    n_min = _series(ck, "n_states_min")
    ax_states.plot(steps, n_states, color="#333333", lw=1.5, label="merged states")
    ax_states.plot(steps, n_min, color="#9467bd", lw=1.3, ls="--", label="minimised states")
    merged = np.array([sum(len(e["from"]) - 1 for e in (c.get("merged") or [])) for c in ck], dtype=float)
    events = merged > 0
    if events.any():
        ax_states.scatter(steps[events], n_states[events], s=8 + 40 * np.sqrt(merged[events] / merged.max()),
                          facecolor="none", edgecolor="#e6550d", lw=0.8, zorder=3,
                          label="merge event (size: states merged)")
    ax_states.set_yscale("log")
    ax_states.set_ylabel("number of states")

    if acc:
        ax_acc = axes[2]
        cmap = ["#31a354", "#3182bd", "#756bb1", "#e6550d", "#636363"]
        for i, (length, y) in enumerate(acc.items()):
            ok = np.isfinite(y)
            ax_acc.plot(steps[ok], y[ok], color=cmap[i % len(cmap)], lw=1.2, marker=".", ms=3,
                        label=f"length {int(length):,}")
        ax_acc.set_ylim(-0.03, 1.03)
        ax_acc.set_ylabel("accuracy\n(last output)")

    _shade_phases(axes, dynamics.get("phases") or [], label_ax=ax_loss)
    ff = dynamics.get("finite_from_step")
    for ax in axes:
        if ff is not None:
            ax.axvline(ff, color="#2ca02c", ls="--", lw=1.2,
                       label=f"finite from step {ff:,}" if ax is ax_states else None)
        ax.grid(alpha=0.25, lw=0.5)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    axes[-1].set_xlabel("training step")
    axes[-1].set_xscale(xscale)
    for ax in (ax_loss, ax_states):
        _plain_log_axis(ax)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.92 if title else 0.95, bottom=0.08)
    return _save(fig, path_stem, formats)


_SEED_TRACES = 64  # up to this many seeds, each seed's state count is drawn too


def plot_timeline_seeds(
    runs: Sequence[Mapping[str, Any]],
    path_stem: str | Path,
    formats: Sequence[str] = ("svg", "png"),
    *,
    title: str | None = None,
    xscale: str = "linear",
) -> list[Path]:
    """The merge timeline across seeds: median and interquartile band of each curve.

    Each run's losses and state counts are interpolated (in log space) onto the union of all
    runs' steps, inside that run's range only. The median first-finite step is a dashed line and
    its interquartile range a green band; a bottom strip has one tick per seed at its first finite
    step (and counts the seeds that never became finite). Up to 64 seeds, each seed's merged state
    count is drawn as a thin line behind the band.

    Parameters
    ----------
    runs : sequence of dict
        ``rnnautomata.dynamics/1`` dicts, one per seed.

    Returns
    -------
    list of Path
    """
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("plot_timeline_seeds needs at least one dynamics dict")
    grid = np.unique(np.concatenate([[c["step"] for c in d["checkpoints"]] for d in runs]).astype(float))

    def on_grid(key: str) -> np.ndarray:  # (n_runs, len(grid)), NaN outside a run's range
        rows = []
        for d in runs:
            ck = d["checkpoints"]
            x = np.array([c["step"] for c in ck], dtype=float)
            y = _series(ck, key)
            ok = np.isfinite(y) & (y > 0)
            row = np.full(grid.shape, np.nan)
            if ok.sum() >= 1:
                inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
                row[inside] = np.exp(np.interp(grid[inside], x[ok], np.log(y[ok])))
            rows.append(row)
        return np.array(rows)

    fig = Figure(figsize=(9, 6.6), dpi=100)
    ax_loss, ax_states, ax_first = fig.subplots(3, 1, sharex=True, gridspec_kw={"hspace": 0.12, "height_ratios": [3, 3, 1]})
    if len(runs) <= _SEED_TRACES:  # every seed's own state count, thin, behind the band
        for row in on_grid("n_states"):
            ax_states.plot(grid, row, color="#333333", lw=0.5, alpha=0.25)
    curves = ((ax_loss, "train_loss", "train loss", "#1f77b4"), (ax_loss, "val_loss", "validation loss", "#d62728"),
              (ax_states, "n_states", "merged states", "#333333"),
              (ax_states, "n_states_min", "minimised states", "#9467bd"))
    import warnings

    for ax, key, label, colour in curves:
        values = on_grid(key)
        if np.isnan(values).all():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns at the edges
            low, median, high = np.nanpercentile(values, [25, 50, 75], axis=0)
        ax.plot(grid, median, color=colour, lw=1.5, label=f"{label} (median)")
        ax.fill_between(grid, low, high, color=colour, alpha=0.2, lw=0)
    finite = [d.get("finite_from_step") for d in runs]
    finite = [f for f in finite if f is not None]
    for ax in (ax_loss, ax_states):
        if finite:
            q1, med, q3 = np.percentile(finite, [25, 50, 75])
            ax.axvspan(q1, q3, color="#2ca02c", alpha=0.12, lw=0)
            ax.axvline(med, color="#2ca02c", ls="--", lw=1.2,
                       label=f"finite from (median; {len(finite)}/{len(runs)} runs)" if ax is ax_states else None)
        ax.set_yscale("log")
        ax.grid(alpha=0.25, lw=0.5)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    # the distribution of the first finite step: one tick per seed that became finite
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(finite))  # fixed: the same figure every time
    ax_first.scatter(finite, jitter, marker="|", s=120, color="#2ca02c", lw=1.5)
    never = len(runs) - len(finite)
    ax_first.set_ylim(-0.6, 0.6)
    ax_first.set_yticks([])
    ax_first.set_ylabel("first\nfinite", fontsize=8)
    ax_first.text(0.99, 0.5, f"never finite: {never} of {len(runs)}", transform=ax_first.transAxes,
                  ha="right", va="center", fontsize=8)
    ax_first.grid(alpha=0.25, lw=0.5, axis="x")
    ax_loss.set_ylabel("loss")
    ax_states.set_ylabel("number of states")
    ax_first.set_xlabel("training step")
    ax_first.set_xscale(xscale)
    for ax in (ax_loss, ax_states):
        _plain_log_axis(ax)
    fig.suptitle(title or f"{len(runs)} seeds: median and interquartile range", fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.08)
    return _save(fig, path_stem, formats)


# ----------------------------------------------------------------------------- everything
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
    run = _run(run_dir)
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

    dyn = _read_dynamics(run.root)
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

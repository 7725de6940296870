"""Styled DOT text of a :class:`~rnnautomata.automata.Machine`.

:func:`machine_dot`: the start state has an arrow and a thick outline, states are filled by output,
parallel transitions share one edge labelled ``"0,1"``, open (``-1``) transitions end in a dashed
stub, a prefix tree is laid out left to right by depth. Machines with more than ``max_states``
states are drawn minimised (the title says so), or as unlabelled points when even that is too big
(:func:`choose_drawn`). Above :data:`SCALABLE_LAYOUT_STATES` states (trees excepted) ``sfdp`` lays
the machine out instead of ``dot``, with straight edges coloured by symbol (:func:`layout_engine`).
:func:`styled_dot` draws a machine as it is, with no size fallback.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from rnnautomata.automata import Machine, dot_quote  # one DOT quoting, shared with Machine.to_dot
from rnnautomata.render.layout import NODE_SEP, RANK_SEP, access_strings, is_tree

__all__ = [
    "DEFAULT_MAX_STATES",
    "OUTPUT_COLOURS",
    "SCALABLE_LAYOUT_STATES",
    "choose_drawn",
    "dot_quote",
    "layout_engine",
    "machine_dot",
    "output_colour",
    "styled_dot",
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


def output_colour(output: int) -> str:
    """The fill colour of a state with output id ``output`` (white for unknown, ``-1``)."""
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
                cells.append(f'<td bgcolor="{output_colour(i)}" width="10" height="10" fixedsize="true" border="1"></td>'
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


def choose_drawn(machine: Machine, max_states: int) -> tuple[Machine, str | None, bool]:
    """The machine to draw, a note for the title, and whether to draw it without labels.

    ``machine`` itself when it has at most ``max_states`` states; else its minimisation, with a note
    saying so, drawn as unlabelled points (third item True) when even that is too big.
    """
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
    shown, note, compact = choose_drawn(machine, max_states)
    if positions is not None and shown is not machine:
        positions = _positions_through(machine, shown, positions)
    full_title = "\n".join(t for t in (title, note) if t)
    return styled_dot(shown, positions, full_title, compact, name)


def styled_dot(shown: Machine, positions: Mapping[int, tuple[float, float]] | None,
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

    lines = [f"digraph {dot_quote(name)} {{"]
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
        attrs = [f'tooltip={dot_quote(f"state {q}: output {out_label}; {where}")}']
        if compact:
            attrs.append(f'color="{output_colour(out) if out >= 0 else "#555555"}"')
        else:
            attrs += [f"label={dot_quote(q)}", f'fillcolor="{output_colour(out)}"']
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
                tip = dot_quote(f"{q} -> {t} on {','.join(symbols)}")
                lines.append(f'  s{q} -> s{t} [color="{_symbol_colour(shown, ids)}", tooltip={tip}];')
            elif compact:
                lines.append(f"  s{q} -> s{t};")
            else:
                lines.append(f"  s{q} -> s{t} [label={dot_quote(','.join(symbols))}];")
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
            lines.append(f"  {stub} [{attr}, tooltip={dot_quote(f'open: state {q} on {shown.alphabet[a]}')}];")
            stub_label = "" if scalable else f", label={dot_quote(shown.alphabet[a])}"
            lines.append(f'  s{q} -> {stub} [style=dashed, color="#aaaaaa", fontcolor="#888888", '
                         f"arrowhead=none{stub_label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"

"""The graphviz ``dot`` binary: drawings to SVG/PNG files and DOT texts to inline SVG.

:func:`draw_machine` writes SVG/PNG with the graphviz ``dot`` binary; without it, a ``.dot`` file
and a one-line notice. :func:`dot_to_svgs` renders many DOT texts with few processes, and
:func:`clean_svg` strips an SVG for inlining in HTML.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from rnnautomata.automata import Machine
from rnnautomata.render.dot import DEFAULT_MAX_STATES, machine_dot
from rnnautomata.runs import atomic_write_text

__all__ = [
    "GRAPHVIZ_TIMEOUT_S",
    "clean_svg",
    "dot_to_svgs",
    "draw_machine",
    "graphviz_binary",
    "write_dot_outputs",
]

_notice_given = False

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
    return write_dot_outputs(dot, stem, formats)


def write_dot_outputs(dot: str, stem: Path, formats: Sequence[str]) -> list[Path]:
    """Write DOT text to ``<stem>.<fmt>`` for each format (``"dot"`` is the text itself), the
    pictures by one graphviz call and renamed into place once whole. Without graphviz, or when it
    fails or times out, ``<stem>.dot`` is written instead, with a one-line notice; it never raises
    for that. Returns the files written."""
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


def clean_svg(svg: str) -> str:
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
            out += [clean_svg(p) for p in pieces]
            continue
        for dot in batch:  # one at a time, so one bad graph does not lose the others
            try:
                single = _graphviz([binary, "-Tsvg"], dot)
            except subprocess.TimeoutExpired:
                out.append(None)
                continue
            out.append(clean_svg(single.stdout.decode(errors="replace")) if single.returncode == 0 else None)
    return out


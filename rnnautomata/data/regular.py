"""Regular-language tasks: each is a ground-truth Moore machine plus how to sample from it.

A task's target after a prefix is the output of its machine's state after that prefix, so every
task here knows its alphabet, its targets, and the minimal machine a network should converge to.

Example (streaming parity)::

    input   1 0 1 1
    output  1 1 0 1      (parity of the bits so far)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rnnautomata.automata import Machine
from rnnautomata.errors import TaskError

__all__ = [
    "RegularTask",
    "streaming_parity",
    "mod_k_counting",
    "machine_task",
    "all_strings",
]


@dataclass(frozen=True, eq=False)
class RegularTask:
    """A sequence task whose targets are the outputs of a deterministic Moore machine.

    Attributes
    ----------
    name : registry name.
    machine : the ground-truth machine (minimal).
    description : one line for `rnnautomata tasks`.
    """

    name: str
    machine: Machine
    description: str = ""

    @property
    def alphabet(self) -> tuple[str, ...]:
        return tuple(self.machine.alphabet)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.machine.outputs)

    @property
    def n_symbols(self) -> int:
        return len(self.machine.alphabet)

    @property
    def n_outputs(self) -> int:
        return len(self.machine.outputs)

    def targets(self, symbols: np.ndarray) -> np.ndarray:
        """Target output id after every symbol: (B, T) -> (B, T)."""
        return self.machine.output_sequence(np.asarray(symbols, dtype=np.int64))

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """``n`` uniformly random strings of ``length`` symbols: (n, length) int64."""
        return rng.integers(0, self.n_symbols, size=(n, length), dtype=np.int64)


def all_strings(n_symbols: int, length: int) -> np.ndarray:
    """Every string of ``length`` symbols in lexicographic order: (n_symbols**length, length)."""
    if length == 0:
        return np.zeros((1, 0), dtype=np.int64)
    n = n_symbols**length
    idx = np.arange(n, dtype=np.int64)[:, None]  # (n, 1)
    powers = n_symbols ** np.arange(length - 1, -1, -1, dtype=np.int64)  # (length,)
    return (idx // powers) % n_symbols  # (n, length)


def streaming_parity() -> RegularTask:
    """Parity of the 1s read so far (the 2-state machine of van Rossem & Saxe, 2025).

    Example: input 1 0 1 1 -> output 1 1 0 1.
    """
    m = Machine(
        alphabet=("0", "1"),
        outputs=("0", "1"),
        transitions=np.array([[0, 1], [1, 0]], dtype=np.int64),
        output_of_state=np.array([0, 1], dtype=np.int64),
        start=0,
        meta={"task": "streaming_parity"},
    )
    return RegularTask("streaming_parity", m, "parity of the 1s so far (2 states)")


def mod_k_counting(k: int | None = None) -> RegularTask:
    """Number of 1s read so far, modulo ``k`` (default 3).

    Example (k=3): input 1 1 0 1 1 -> output 1 2 2 0 1.
    """
    k = 3 if k is None else int(k)
    if k < 2:
        raise TaskError(f"mod_k_counting needs k >= 2 (got {k}); set task.k")
    states = np.arange(k, dtype=np.int64)
    transitions = np.stack([states, (states + 1) % k], axis=1)  # (k, 2)
    m = Machine(
        alphabet=("0", "1"),
        outputs=tuple(str(i) for i in range(k)),
        transitions=transitions,
        output_of_state=states.copy(),
        start=0,
        meta={"task": f"mod_{k}_counting"},
    )
    return RegularTask("mod_k_counting", m, f"number of 1s so far mod k ({k} states)")


def machine_task(path: str | None = None) -> RegularTask:
    """Any user machine, read from a machine JSON (docs/formats.md) or DOT file, minimised."""
    if not path:
        raise TaskError("task 'machine' needs task.path = a machine .json or .dot file")
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"machine file {p} not found (task.path)")
    try:
        if p.suffix == ".dot":
            m = Machine.from_dot(p.read_text(encoding="utf-8"))
        else:
            m = Machine.load(p)
    except (ValueError, KeyError, TypeError) as err:
        raise TaskError(f"cannot read machine {p}: {err}") from None
    if not m.is_complete():
        raise TaskError(f"machine {p} has undefined transitions; a task machine must be complete")
    return RegularTask(f"machine:{p.name}", m.minimize(), f"user machine from {p.name}")


TaskBuilder = Callable[..., RegularTask]

"""Task registry: a plain dict from task name to a builder taking the study's TaskConfig.

A task's one-line description is written once, where the task is built (``RegularTask.description``
in :mod:`rnnautomata.data.regular`); :func:`describe` reads it from the task built with default
fields, for ``rnnautomata tasks``.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Callable

from rnnautomata.errors import TaskError

__all__ = ["TASKS", "TASK_FIELDS", "make_task", "task_names", "describe"]


def _regular():
    from rnnautomata.data import regular

    return regular


def _tomita(index: int, cfg):
    return _regular().tomita(index)


def _dyck1(depth: int, cfg):
    return _regular().bounded_dyck1(depth)


#: name -> builder(task_config) -> RegularTask
TASKS: dict[str, Callable] = {
    "streaming_parity": lambda cfg: _regular().streaming_parity(),
    "mod_k_counting": lambda cfg: _regular().mod_k_counting(cfg.k),
    "machine": lambda cfg: _regular().machine_task(cfg.path),
    **{f"tomita{i}": partial(_tomita, i) for i in range(1, 8)},
    **{f"dyck1_depth{d}": partial(_dyck1, d) for d in (2, 3, 4)},
    "first_symbol": lambda cfg: _regular().first_symbol(),
    "random_dfa5": lambda cfg: _regular().random_task(5, 2, 2, seed=0),
    "random_moore6": lambda cfg: _regular().random_task(6, 3, 3, seed=0),
}


#: task name -> the task-specific TaskConfig fields it reads. A task not listed reads none of them;
#: a study that sets one for a task that does not read it is refused (rnnautomata.config).
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "mod_k_counting": ("k",),
    "machine": ("path",),
}


def task_names() -> list[str]:
    return sorted(TASKS)


def make_task(cfg):
    """Build the task named by ``cfg.name`` (a TaskConfig)."""
    if cfg.name not in TASKS:
        raise TaskError(f"unknown task {cfg.name!r}; known tasks: {', '.join(task_names())} (see `rnnautomata tasks`)")
    task = TASKS[cfg.name](cfg)
    if task.n_symbols == 0:
        raise TaskError(f"task {cfg.name!r} has an empty alphabet; a task needs at least one input symbol")
    return task


def describe(name: str) -> str:
    """One line on task ``name``: the description of the task built with its default fields, and
    the fields it reads; for a task that cannot be built without them, what it needs.

    >>> describe("streaming_parity")
    'parity of the 1s so far (2 states)'
    >>> describe("mod_k_counting")
    'number of 1s so far mod k (3 states); reads task.k'
    """
    defaults = SimpleNamespace(name=name, **{f: None for names in TASK_FIELDS.values() for f in names})
    try:
        text = make_task(defaults).description
    except TaskError as err:
        return str(err)
    fields = TASK_FIELDS.get(name, ())
    return text + (f"; reads {', '.join('task.' + f for f in fields)}" if fields else "")

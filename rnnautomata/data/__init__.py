"""Task registry: a plain dict from task name to a builder taking the study's TaskConfig."""

from __future__ import annotations

from functools import partial
from typing import Callable

from rnnautomata.errors import TaskError

__all__ = ["TASKS", "TASK_FIELDS", "make_task", "task_names"]


def _regular():
    from rnnautomata.data import regular

    return regular


#: name -> (builder(task_config) -> RegularTask, one-line description)
TASKS: dict[str, tuple[Callable, str]] = {
    "streaming_parity": (lambda cfg: _regular().streaming_parity(), "parity of the 1s so far (2 states)"),
    "mod_k_counting": (lambda cfg: _regular().mod_k_counting(cfg.k), "number of 1s so far mod k (k states; task.k, default 3)"),
    "machine": (lambda cfg: _regular().machine_task(cfg.path), "any user DFA/Moore machine from JSON or DOT (task.path)"),
}


def _tomita(index: int, cfg):
    return _regular().tomita(index)


def _dyck1(depth: int, cfg):
    return _regular().bounded_dyck1(depth)


_TOMITA_SHORT = ("1*", "(10)*", "no odd run of 1s then odd run of 0s", "no 000", "even #0 and even #1",
                 "#0 - #1 = 0 mod 3", "0*1*0*1*")
TASKS.update({f"tomita{i}": (partial(_tomita, i), f"Tomita {i}: {_TOMITA_SHORT[i - 1]}") for i in range(1, 8)})
TASKS.update({
    f"dyck1_depth{d}": (partial(_dyck1, d), f"balanced ( ) with nesting <= {d}; accept when balanced ({d + 2} states)")
    for d in (2, 3, 4)
})
TASKS.update({
    "first_symbol": (lambda cfg: _regular().first_symbol(), "accept iff the first symbol is 1 (3 states)"),
    "random_dfa5": (lambda cfg: _regular().random_task(5, 2, 2, seed=0), "seeded random minimal DFA: 5 states, 2 symbols"),
    "random_moore6": (lambda cfg: _regular().random_task(6, 3, 3, seed=0),
                      "seeded random minimal Moore machine: 6 states, 3 symbols, 3 outputs"),
})


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
    task = TASKS[cfg.name][0](cfg)
    if task.n_symbols == 0:
        raise TaskError(f"task {cfg.name!r} has an empty alphabet; a task needs at least one input symbol")
    return task

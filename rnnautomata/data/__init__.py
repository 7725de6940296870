"""Task registry: a plain dict from task name to a builder taking the study's TaskConfig."""

from __future__ import annotations

from typing import Callable

from rnnautomata.errors import TaskError

__all__ = ["TASKS", "make_task", "task_names"]


def _regular():
    from rnnautomata.data import regular

    return regular


#: name -> (builder(task_config) -> RegularTask, one-line description)
TASKS: dict[str, tuple[Callable, str]] = {
    "streaming_parity": (lambda cfg: _regular().streaming_parity(), "parity of the 1s so far (2 states)"),
    "mod_k_counting": (lambda cfg: _regular().mod_k_counting(cfg.k), "number of 1s so far mod k (k states; task.k, default 3)"),
    "machine": (lambda cfg: _regular().machine_task(cfg.path), "any user DFA/Moore machine from JSON or DOT (task.path)"),
}


def task_names() -> list[str]:
    return sorted(TASKS)


def make_task(cfg):
    """Build the task named by ``cfg.name`` (a TaskConfig)."""
    if cfg.name not in TASKS:
        raise TaskError(f"unknown task {cfg.name!r}; known tasks: {', '.join(task_names())} (see `rnnautomata tasks`)")
    return TASKS[cfg.name][0](cfg)

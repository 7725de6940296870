"""Studies: the shipped study files (found by name) and the registry of study kinds.

``KINDS`` maps each ``kind`` to the class implementing it, as ``"module:Class"`` so that importing
the registry imports no kind (and no torch). Adding a kind = one file with a
:class:`~rnnautomata.studies.base.StudyKind` subclass + one line here.
"""

from __future__ import annotations

import importlib

from rnnautomata.errors import ConfigError
from rnnautomata.studies.base import StudyKind
from rnnautomata.studies.shipped import find_study, resolve_relative_paths, shipped_studies, study_dirs

__all__ = ["KINDS", "StudyKind", "kind_names", "get_kind", "kind_of",
           "find_study", "resolve_relative_paths", "shipped_studies", "study_dirs"]

KINDS: dict[str, str] = {
    "induction": "rnnautomata.studies.induction:InductionKind",
}


def kind_names() -> tuple[str, ...]:
    """Every registered study kind, in registry order."""
    return tuple(KINDS)


def get_kind(name: str) -> StudyKind:
    """The :class:`StudyKind` registered as ``name``; ``ConfigError`` naming the known kinds if none."""
    if name not in KINDS:
        raise ConfigError(f"kind = {name!r} is not a known study kind; choose one of: {', '.join(KINDS)}")
    module, cls = KINDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def kind_of(raw: dict, where: object) -> str:
    """The ``kind`` of a study dict (default ``automata``), checked against the registry."""
    kind = raw.get("kind", "automata")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind = {kind!r} is not a known study kind; choose one of: {', '.join(KINDS)}")
    return kind

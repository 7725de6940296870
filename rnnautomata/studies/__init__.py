"""Studies: the shipped study files (found by name) and the registry of study kinds.

``KINDS`` maps each ``kind`` to the class implementing it, as ``"module:Class"`` so that importing
the registry imports no kind (and no torch). Adding a kind = one file with a
:class:`~rnnautomata.studies.base.StudyKind` subclass + one line here (docs/contracts.md, "Study kinds").

``FOLDER_KINDS`` holds the kinds that only a run folder's manifest names, never a study file: a
many-seed folder (``kind = "seeds"``), written by an ``automata`` study that sets ``seeds``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rnnautomata.errors import ConfigError
from rnnautomata.studies.base import StudyKind
from rnnautomata.studies.shipped import find_study, resolve_relative_paths, shipped_studies, study_dirs

__all__ = ["KINDS", "FOLDER_KINDS", "StudyKind", "kind_names", "get_kind", "kind_of", "run_kind",
           "find_study", "resolve_relative_paths", "shipped_studies", "study_dirs"]

KINDS: dict[str, str] = {
    "automata": "rnnautomata.studies.automata:AutomataKind",
    "icl": "rnnautomata.studies.icl:ICLKind",
    "grokking": "rnnautomata.studies.grokking:GrokkingKind",
    "icl_classification": "rnnautomata.studies.icl_classification:ICLClassificationKind",
    "transient_ridge": "rnnautomata.studies.transient_ridge:TransientRidge",
    "induction": "rnnautomata.studies.induction:InductionKind",
}

FOLDER_KINDS: dict[str, str] = {
    "seeds": "rnnautomata.studies.automata:SeedsKind",
    "transient_ridge": "rnnautomata.studies.transient_ridge:TransientRidge",
    "induction": "rnnautomata.studies.induction:InductionKind",
}


def kind_names() -> tuple[str, ...]:
    """Every study kind a study file may name, in registry order."""
    return tuple(KINDS)


def get_kind(name: str) -> StudyKind:
    """The :class:`StudyKind` registered as ``name`` (a study kind or a folder kind); ``ConfigError``
    naming the known kinds if none."""
    where = KINDS.get(name) or FOLDER_KINDS.get(name)
    if where is None:
        raise ConfigError(f"kind = {name!r} is not a known study kind; choose one of: {', '.join(KINDS)}")
    module, cls = where.split(":")
    return getattr(importlib.import_module(module), cls)()


def kind_of(raw: dict, where: object) -> str:
    """The ``kind`` of a study dict (default ``automata``), checked against the registry."""
    kind = raw.get("kind", "automata")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"{where}: kind = {kind!r} is not a known study kind; choose one of: {', '.join(KINDS)}")
    return kind


def run_kind(run_dir: str | Path) -> StudyKind:
    """The :class:`StudyKind` of a run folder, from its manifest's ``kind`` (``CheckpointError`` for a
    folder that is not a run)."""
    from rnnautomata.errors import CheckpointError
    from rnnautomata.runs import RunDir

    kind = RunDir(Path(run_dir)).read_manifest().get("kind", "automata")
    if not isinstance(kind, str) or kind not in KINDS and kind not in FOLDER_KINDS:
        raise CheckpointError(f"{run_dir} holds a run of kind {kind!r}, which this version of rnnautomata does not know")
    return get_kind(kind)

"""The shipped studies (tasks/*.toml), found by name from any folder.

A study argument is a TOML path, or the name of a shipped study (``tomita3``, ``streaming_parity``):
looked up in the ``tasks/`` folder of a source checkout, then in ``<prefix>/share/rnnautomata/tasks``
where ``pip install`` puts them (setup.cfg ``data_files``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnautomata.errors import ConfigError

__all__ = ["study_dirs", "shipped_studies", "find_study", "resolve_relative_paths"]


def study_dirs() -> list[Path]:
    """Folders holding shipped studies, in lookup order (only those that exist)."""
    here = Path(__file__).resolve().parent.parent  # rnnautomata/
    candidates = [here.parent / "tasks", Path(sys.prefix) / "share" / "rnnautomata" / "tasks"]
    return [d for d in candidates if d.is_dir()]


def shipped_studies() -> dict[str, Path]:
    """Name -> TOML file of every shipped study (the first folder wins for a name)."""
    found: dict[str, Path] = {}
    for folder in study_dirs():
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def find_study(arg: str | Path) -> Path:
    """The study file ``arg`` names: an existing path, or a shipped study's name.

    Raises
    ------
    ConfigError : neither (the message lists the shipped names).
    """
    path = Path(arg)
    if path.is_file():
        return path
    name = path.name[:-5] if path.name.endswith(".toml") else path.name
    shipped = shipped_studies()
    if path.parent == Path(".") and name in shipped or (str(path.parent) == "tasks" and name in shipped):
        return shipped[name]
    names = ", ".join(sorted(shipped)) or "none found"
    raise ConfigError(f"study file {arg} not found and no shipped study is named {name!r}; shipped studies: {names}")


def resolve_relative_paths(raw: dict, study_file: Path) -> dict:
    """``task.path`` given relative in a study file is relative to that file's folder (as a user
    writing ``path = "my_machine.json"`` beside the study means); an absolute path, or one that
    exists only relative to the working folder, is left as it is."""
    task = raw.get("task")
    if isinstance(task, dict) and isinstance(task.get("path"), str):
        p = Path(task["path"])
        beside = (study_file.parent / p).resolve()
        if not p.is_absolute() and beside.is_file():
            raw = {**raw, "task": {**task, "path": str(beside)}}
    return raw

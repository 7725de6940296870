"""The run directory: every file a run writes, written atomically.

Layout (see docs/formats.md)::

    runs/<name>/
      study.toml          the resolved study
      manifest.json       format, package version, kind, status, steps
      metrics.jsonl       one JSON object per evaluation
      checkpoints/step_000000.safetensors
      automata/step_000000.json
      dynamics.json, report.html, figures/

Every write goes to a temporary file in the same directory and is then renamed over the target,
so a killed run never leaves half a file. Checkpoints are safetensors: loading them parses a JSON
header and raw tensor bytes, and never executes code from the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnnautomata import __version__
from rnnautomata.errors import CheckpointError

__all__ = [
    "RUN_FORMAT",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_checkpoint",
    "load_checkpoint",
    "RunDir",
]

RUN_FORMAT = "rnnautomata.run/1"
_UMASK = os.umask(0)
os.umask(_UMASK)
_STEP_FILE = re.compile(r"^step_(\d{6,})\.safetensors$")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(fig, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``fig.savefig`` to ``path`` atomically (rendered in memory, then written by rename); the
    format is the file's suffix."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip("."), **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=True) + "\n")


def save_checkpoint(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> Path:
    """Save weights (and string metadata) as a safetensors file, atomically.

    Parameters
    ----------
    path : target file, usually ``checkpoints/step_000123.safetensors``.
    tensors : name -> tensor; moved to CPU and made contiguous.
    metadata : name -> str (safetensors stores only strings); JSON-encode anything richer.
    """
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    meta.setdefault("rnnautomata_version", __version__)
    return atomic_write_bytes(path, _canonical_safetensors(st_save(cpu, metadata=meta)))


def _canonical_safetensors(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order.

    safetensors writes the header from a hash map, so the order of its keys (and so the file's
    bytes) varies between processes; sorted, equal weights and metadata give identical files.
    Tensor offsets do not depend on the header, so only the header is rewritten (padded with
    spaces to a multiple of 8 bytes, as safetensors itself does).
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors checkpoint without executing anything from the file.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, corrupt, or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; list a run's steps with `rnnautomata track RUN`")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a safetensors file ({type(err).__name__}); "
                              + _repair_advice(path)) from None
    metadata = dict(header.get("__metadata__") or {})
    return tensors, metadata


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


#: study fields a finished run can be continued with (more epochs of the same training)
EXTENDABLE = ("train.epochs",)


def _check_extension(root: Path, old_toml: str, new_toml: str) -> None:
    """Accept a study that only trains the run in ``root`` for more epochs; otherwise a one-line
    error naming the fields that differ."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    old, new = _flat(tomllib.loads(old_toml)), _flat(tomllib.loads(new_toml))
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differ == ["train.epochs"] and isinstance(old.get("train.epochs"), int) and new["train.epochs"] > old["train.epochs"]:
        return
    shown = ", ".join(f"{k} ({old.get(k)!r} there, {new.get(k)!r} now)" for k in differ[:4]) + (" ..." if len(differ) > 4 else "")
    raise CheckpointError(
        f"{root} holds a different study: {shown}; only more train.epochs can continue a run; use another --out "
        f"(or delete the folder to start over)"
    )


def _repair_advice(path: Path) -> str:
    """What restores a run whose checkpoint ``path`` is damaged."""
    def step_of(p: Path) -> int | None:
        m = re.fullmatch(r"step_(\d+)\.safetensors", p.name)
        return int(m.group(1)) if m else None

    match = step_of(path)
    later = [p for p in path.parent.glob("step_*.safetensors") if match is not None and (step_of(p) or -1) > match]
    if match is None or path.parent.name != "checkpoints":
        return "it cannot be read"
    run = path.parent.parent
    if not later:  # the last one: resuming recreates it
        return f"delete it and rerun `rnnautomata run {run / 'study.toml'} --out {run}` to retrain it from the previous checkpoint"
    # a middle one: resuming goes on from the last checkpoint and would never recreate it; training
    # is deterministic, so the same study into a new folder writes it again, byte for byte
    return (f"resuming cannot recreate a middle checkpoint: retrain the run into a new folder with "
            f"`rnnautomata run {run / 'study.toml'} --out NEW` (same seed: identical checkpoints) and use that")


@dataclass(frozen=True)
class RunDir:
    """Paths and safe reads/writes of one run directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # --- paths -----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def study_path(self) -> Path:
        return self.root / "study.toml"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def automata_dir(self) -> Path:
        return self.root / "automata"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def dynamics_path(self) -> Path:
        return self.root / "dynamics.json"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:06d}.safetensors"

    def automaton_path(self, step: int) -> Path:
        return self.automata_dir / f"step_{step:06d}.json"

    def robust_automaton_path(self, step: int) -> Path:
        """The ε-free machine of checkpoint ``step`` (rnnautomata.robust), beside the ε rule's."""
        return self.automata_dir / "robust" / f"step_{step:06d}.json"

    # --- manifest --------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    @contextlib.contextmanager
    def locked(self, what: str = "training") -> Iterator["RunDir"]:
        """Hold this run folder for one writer (an advisory ``flock`` on ``.lock``, or ``.<what>.lock``).

        A second writer gets a one-line :class:`CheckpointError` naming the holder (its pid, host
        and command); the lock goes away with the process, so a killed run never leaves it held.
        """
        import fcntl
        import socket
        import sys

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / (".lock" if what == "training" else f".{what}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 500, 0).decode("utf-8", "replace").strip() or "another process"
                raise CheckpointError(f"{self.root} is already being written ({what}) by {holder}; wait for it to "
                                      f"finish, or use another --out") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv[:3])})".encode(), 0)
            yield self
        finally:
            os.close(fd)  # releases the lock

    def start_or_resume(self, kind: str, study_toml: str, sources: Mapping[str, str] | None = None) -> list[int]:
        """Make a new run folder holding ``study_toml``, or accept an existing run of this very
        study (``kind`` and study.toml both equal) to resume it.

        ``sources`` maps files the study reads (e.g. ``"task.path"``) to their content hashes
        (:func:`file_digest`); a run that recorded other hashes in its manifest is refused, since
        the same study.toml would then mean a different task. The caller records them with
        ``write_manifest(sources=...)``.

        Returns the checkpoint steps already there (``[]`` for a new folder). Raises
        :class:`CheckpointError` for a folder holding another kind of run or another study: a
        rerun never overwrites a different run or mixes two runs in one folder.
        """
        if self.exists():
            manifest = self.read_manifest()
            if manifest.get("kind") != kind or not self.study_path.is_file():
                raise CheckpointError(
                    f"{self.root} holds a different kind of run; use another --out (or delete the folder to start over)"
                )
            old_toml = self.study_path.read_text()
            if old_toml != study_toml:
                _check_extension(self.root, old_toml, study_toml)
                atomic_write_text(self.study_path, study_toml)  # the same run, trained for longer
            recorded = manifest.get("sources") or {}
            for key, digest in (sources or {}).items():
                if key in recorded and recorded[key] != digest:
                    raise CheckpointError(
                        f"the file behind {key} changed since {self.root} was trained on it (sha256 {recorded[key][:12]}… "
                        f"then, {digest[:12]}… now); restore it, or use another --out for the new task"
                    )
            return self.steps()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.study_path, study_toml)
        return []

    def read_manifest(self) -> dict:
        """Read manifest.json, checking that this is one of our run directories."""
        if not self.root.is_dir():
            raise CheckpointError(f"run directory {self.root} does not exist; create it with `rnnautomata run STUDY.toml --out {self.root}`")
        if not self.manifest_path.is_file():
            raise CheckpointError(f"{self.root} has no manifest.json, so it is not an rnnautomata run directory")
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{self.manifest_path} is not valid JSON; the run directory is damaged") from None
        if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
            raise CheckpointError(
                f"{self.manifest_path} has format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                f"expected {RUN_FORMAT!r}; this run was not written by this version of rnnautomata"
            )
        return manifest

    def write_manifest(self, **fields: Any) -> dict:
        """Create or update manifest.json with ``fields``."""
        manifest = {"format": RUN_FORMAT, "package_version": __version__}
        if self.manifest_path.is_file():
            manifest.update(self.read_manifest())
        manifest.update(fields)
        manifest["package_version"] = __version__
        atomic_write_json(self.manifest_path, manifest)
        return manifest

    # --- checkpoints -----------------------------------------------------------------------
    def steps(self) -> list[int]:
        """Steps of all complete checkpoints on disk, ascending (temp files are ignored)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            m = _STEP_FILE.match(p.name)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    def resolve_step(self, step: int | str | None) -> int:
        """Turn ``None``/``"last"``/a step/``"@K"`` (the K-th checkpoint, 0-based, negative from the
        end) into an existing checkpoint step, or raise CheckpointError."""
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"{self.root} has no checkpoints yet; run `rnnautomata run` first")
        if step is None or step == "last":
            return steps[-1]
        if isinstance(step, str) and step.startswith("@"):
            try:
                return steps[int(step[1:])]
            except (ValueError, IndexError):
                raise CheckpointError(f"checkpoint index {step!r} is not one of @0..@{len(steps) - 1} "
                                      f"(or @-1..@-{len(steps)} from the end)") from None
        try:
            step = int(step)
        except ValueError:
            raise CheckpointError(f"step {step!r} is not a step, 'last' or '@INDEX'") from None
        if step not in steps:
            raise CheckpointError(
                f"{self.root} has no checkpoint at step {step}; available: {steps[0]}..{steps[-1]} ({len(steps)} checkpoints)"
            )
        return step

    # --- metrics ---------------------------------------------------------------------------
    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (a line is written whole with one write call)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(dict(record), allow_nan=True) + "\n"
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        """All complete metric records (a torn last line from a kill is skipped)."""
        if not self.metrics_path.is_file():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def rewrite_metrics(self, records: list[Mapping[str, Any]]) -> None:
        """Replace metrics.jsonl (used on resume to drop records past the last checkpoint)."""
        atomic_write_text(self.metrics_path, "".join(json.dumps(dict(r)) + "\n" for r in records))

    def restore_metrics(self, upto: int) -> None:
        """On resume: keep the metrics records of checkpoints up to step ``upto`` (dropping later
        ones), and give back a checkpoint's record from the copy in its own metadata when its line
        was lost (a kill between writing the checkpoint and appending the line)."""
        have = {r["step"]: r for r in self.read_metrics() if isinstance(r.get("step"), int) and r["step"] <= upto}
        for step in self.steps():
            if step <= upto and step not in have:
                _, meta = load_checkpoint(self.checkpoint_path(step))
                if "metrics" in meta:
                    have[step] = json.loads(meta["metrics"])
        self.rewrite_metrics([have[s] for s in sorted(have)])

"""Studies of kind "icl" (linear attention on in-context regression) and "grokking" (modular addition).

Frozen dataclasses, filled from a raw TOML dict and validated once; every problem is a ConfigError
whose one line names the field and what is allowed. See tasks/icl_linear_*.toml and
tasks/grokking_modular_addition.toml.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from rnnautomata.errors import ConfigError
from rnnautomata.config import toml_value

__all__ = [
    "ICLData", "ICLModel", "ICLTrain", "Measures", "ICLStudy",
    "GrokData", "GrokModel", "GrokTrain", "GrokkingStudy",
    "study_from_dict", "study_to_toml",
]


@dataclass(frozen=True)
class ICLData:
    x_dim: int = 4                      # D, input dimension
    n_context: int = 31                 # N, labelled examples before the query (sequence = N + 1 tokens)
    spectrum: str | tuple[float, ...] = "linear"   # Λ's eigenvalues: "linear" (∝ 1..D), "white", or a list
    rotate: bool = True                 # rotate Λ's eigenbasis randomly (else diagonal)
    noise_std: float = 0.0              # σ, label noise
    task_pool: int | None = None        # M fixed task vectors; None = a fresh w ~ N(0, I) per sequence
    n_train: int = 5000                 # training sequences (full-batch gradient descent)
    n_test: int = 2000                  # fresh test sequences (test loss, "which algorithm")
    whiten_tasks: bool = True           # whiten the training set's task vectors (authors' convention)


@dataclass(frozen=True)
class ICLModel:
    parametrization: str = "merged"     # "merged" (one W_KQ per head) or "separate" (W_K, W_Q per head)
    n_heads: int = 8                    # H
    rank: int = 1                       # rows of W_K and W_Q per head (separate only)
    init_scale: float = 1e-6            # std of the Gaussian initial weights
    normalize_context: bool = False     # multiply attention by 1/N (authors' code: false)
    init_in_subspace: bool = True       # zero the key's y-column and the value's x-entries at init


@dataclass(frozen=True)
class ICLTrain:
    lr: float = 0.005                   # learning rate of full-batch gradient descent on the MSE
    epochs: int = 4000                  # gradient steps (one per epoch)
    eval_every: int = 10                # steps between metric records
    checkpoint_every: int = 100         # steps between checkpoints
    seed: int = 0                       # seeds Λ's rotation, the data and the init


@dataclass(frozen=True)
class Measures:
    top_k: int = 4                      # leading singular subspace size for subspace stability
    rel_tol: float = 0.1                # a singular value counts towards the rank above rel_tol × the largest


@dataclass(frozen=True)
class ICLStudy:
    kind: str = "icl"
    name: str = "icl"
    data: ICLData = field(default_factory=ICLData)
    model: ICLModel = field(default_factory=ICLModel)
    train: ICLTrain = field(default_factory=ICLTrain)
    measures: Measures = field(default_factory=Measures)


@dataclass(frozen=True)
class GrokData:
    modulus: int = 59                   # p: learn (a + b) mod p
    train_fraction: float = 0.35        # share of the p² pairs used for training


@dataclass(frozen=True)
class GrokModel:
    embed_dim: int = 32                 # token embedding size
    hidden_size: int = 128              # ReLU hidden units


@dataclass(frozen=True)
class GrokTrain:
    lr: float = 1e-2                    # AdamW learning rate (full batch)
    weight_decay: float = 1.0           # AdamW weight decay (drives grokking)
    epochs: int = 2000                  # full-batch steps
    eval_every: int = 10                # steps between metric records
    checkpoint_every: int = 25          # steps between checkpoints
    seed: int = 0                       # seeds the split and the init


@dataclass(frozen=True)
class GrokkingStudy:
    kind: str = "grokking"
    name: str = "grokking"
    data: GrokData = field(default_factory=GrokData)
    model: GrokModel = field(default_factory=GrokModel)
    train: GrokTrain = field(default_factory=GrokTrain)
    measures: Measures = field(default_factory=lambda: Measures(top_k=8))


_CHOICES = {"model.parametrization": ("merged", "separate")}
_NONNEGATIVE = {"data.noise_std", "train.weight_decay", "train.seed"}


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if value is None:
        raise ConfigError(f"{key} may not be empty")
    if args and type(None) in args:                     # X | None
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if args and str in args and isinstance(value, str):  # str | tuple[float, ...]
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false (got {value!r})")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer (got {value!r})")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number (got {value!r})")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string (got {value!r})")
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return tuple(float(v) for v in value)
    raise ConfigError(f"{key} must be a string or a list of numbers (got {value!r})")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{prefix}] must be a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown field {prefix}.{unknown[0]}; allowed in [{prefix}]: {', '.join(known)}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}"
        v = _coerce(key, value, hints[name])
        if key in _CHOICES and v not in _CHOICES[key]:
            raise ConfigError(f"{key} = {v!r} is not allowed; choose one of: {', '.join(_CHOICES[key])}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if key in _NONNEGATIVE and v < 0:
                raise ConfigError(f"{key} must be ≥ 0 (got {v!r})")
            if key not in _NONNEGATIVE and v <= 0:
                raise ConfigError(f"{key} must be positive (got {v!r})")
        kwargs[name] = v
    return cls(**kwargs)


_KINDS = {"icl": ICLStudy, "grokking": GrokkingStudy}
_SECTIONS = ("data", "model", "train", "measures")


def study_from_dict(raw: Mapping[str, Any]) -> ICLStudy | GrokkingStudy:
    """Validate a raw study dict (TOML already parsed, overrides applied) into a frozen study."""
    if not isinstance(raw, Mapping):
        raise ConfigError("a study must be a TOML table")
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"kind = {kind!r} is not handled by rnnautomata.icl; choose one of: {', '.join(_KINDS)}")
    cls = _KINDS[kind]
    unknown = sorted(set(raw) - {"kind", "name", *_SECTIONS})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in the study; allowed: kind, name, {', '.join(_SECTIONS)}")
    defaults = cls()
    kwargs: dict[str, Any] = {"kind": kind}
    if "name" in raw:
        if not isinstance(raw["name"], str) or not raw["name"]:
            raise ConfigError(f"name must be a non-empty string (got {raw['name']!r})")
        kwargs["name"] = raw["name"]
    for section in _SECTIONS:
        sub = raw.get(section, {})
        base = dataclasses.asdict(getattr(defaults, section))
        if isinstance(sub, Mapping):
            base.update(sub)
            sub = {k: v for k, v in base.items() if v is not None}
        kwargs[section] = _build(type(getattr(defaults, section)), sub, section)
    study = cls(**kwargs)
    _cross_check(study)
    return study


def _cross_check(study: ICLStudy | GrokkingStudy) -> None:
    if isinstance(study, ICLStudy):
        d = study.data
        if isinstance(d.spectrum, tuple) and len(d.spectrum) != d.x_dim:
            raise ConfigError(f"data.spectrum lists {len(d.spectrum)} eigenvalues but data.x_dim = {d.x_dim}")
        if isinstance(d.spectrum, str) and d.spectrum not in ("linear", "white"):
            raise ConfigError(f"data.spectrum = {d.spectrum!r} is not allowed; choose 'linear', 'white' or a list of numbers")
        if d.n_context <= d.x_dim + 1:
            raise ConfigError(f"data.n_context ({d.n_context}) must exceed data.x_dim + 1 ({d.x_dim + 1}) for the least-squares baseline")
        if d.whiten_tasks and d.n_train <= d.x_dim:
            raise ConfigError(f"data.n_train must exceed data.x_dim to whiten tasks (got {d.n_train})")
    else:
        if study.data.train_fraction >= 1:
            raise ConfigError(f"data.train_fraction must be in (0, 1) (got {study.data.train_fraction})")
        if study.data.modulus < 3:
            raise ConfigError(f"data.modulus must be at least 3 (got {study.data.modulus})")


def study_to_toml(study: ICLStudy | GrokkingStudy) -> str:
    """The resolved study as TOML that ``study_from_dict(tomllib.loads(...))`` reads back equal."""
    lines = [f"kind = {toml_value(study.kind)}", f"name = {toml_value(study.name)}"]
    for section in _SECTIONS:
        lines.append(f"\n[{section}]")
        for k, v in dataclasses.asdict(getattr(study, section)).items():
            if v is not None:
                lines.append(f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"

"""Studies of kind "icl" (linear attention on in-context regression), "grokking" (modular addition) and
"icl_classification" (Nguyen & Reddy's in-context classification, rnnautomata.icl.classification).

Frozen dataclasses, filled from a raw TOML dict and validated once; every problem is a ConfigError
whose one line names the field and what is allowed. See tasks/icl_linear_*.toml and
tasks/grokking_modular_addition.toml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from rnnautomata.config import dict_to_toml
from rnnautomata.errors import ConfigError
from rnnautomata.fields import build_study, positive_numbers

__all__ = [
    "ICLData", "ICLModel", "ICLTrain", "Measures", "ICLStudy",
    "GrokData", "GrokModel", "GrokTrain", "GrokkingStudy",
    "ClsData", "ClsModel", "ClsTrain", "ICLClassificationStudy",
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


@dataclass(frozen=True)
class ClsData:
    x_dim: int = 63                     # D, item dimension; items μ_k ~ N(0, I/D)
    n_items: int = 1024                 # K, trained items (task diversity); each has a fixed label
    n_labels: int = 2                   # L, labels (balanced over the K items, shuffled)
    n_context: int = 100                # N, labelled context items before the query (N + 1 tokens)
    noise: float = 0.1                  # ε: a token's item is (μ + ε η) / √(1 + ε²), η ~ N(0, I/D)
    p_bursty: float = 1.0               # share of training sequences whose query item is in the context
    n_test: int = 1000                  # sequences in each fixed test set (ICL: novel items; IWL: trained)


@dataclass(frozen=True)
class ClsModel:
    mlp_width: int = 512                # hidden units of the 3-layer ReLU MLP
    layer_norm: bool = True             # LayerNorm on the (D + L)-dimensional input tokens


@dataclass(frozen=True)
class ClsTrain:
    lr: float = 0.01                    # SGD learning rate (no momentum)
    batch_size: int = 128               # sequences per SGD step, freshly sampled every step
    weight_decay: float = 0.0           # on attention and LayerNorm only (the paper: 1e-10; 3e-3 for transience)
    epochs: int = 20000                 # SGD steps (named as in the other studies)
    eval_every: int = 250               # steps between metric records (acc/icl, acc/iwl)
    checkpoint_every: int = 1000        # steps between checkpoints
    seed: int = 0                       # seeds the items, labels, test sets, batches and init


@dataclass(frozen=True)
class ICLClassificationStudy:
    kind: str = "icl_classification"
    name: str = "icl_classification"
    data: ClsData = field(default_factory=ClsData)
    model: ClsModel = field(default_factory=ClsModel)
    train: ClsTrain = field(default_factory=ClsTrain)
    measures: Measures = field(default_factory=Measures)   # unused; kept so every study has the same sections


_CHOICES = {"model.parametrization": ("merged", "separate")}
_NONNEGATIVE = {"data.noise_std", "train.weight_decay", "train.seed", "data.noise", "data.p_bursty"}


#: ICL/grokking rules: listed choices; every number positive, except the ones that may be 0
_check_value = positive_numbers(_CHOICES, _NONNEGATIVE)


#: kind -> its study dataclass (each names its kind once, in its ``kind`` field; rnnautomata.studies.KINDS
#: registers each kind's StudyKind)
_KINDS = {cls.kind: cls for cls in (ICLStudy, GrokkingStudy, ICLClassificationStudy)}
_SECTIONS = ("data", "model", "train", "measures")


def study_from_dict(raw: Mapping[str, Any]) -> ICLStudy | GrokkingStudy:
    """Validate a raw study dict (TOML already parsed, overrides applied) into a frozen study."""
    if not isinstance(raw, Mapping):
        raise ConfigError("a study must be a TOML table")
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"kind = {kind!r} is not handled by rnnautomata.icl; choose one of: {', '.join(_KINDS)}")
    # each section starts from the study's own defaults (grokking's top_k = 8), then the file's
    study = build_study(_KINDS[kind], raw, _SECTIONS, _check_value, merge_defaults=True, kind=kind)
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
    elif isinstance(study, ICLClassificationStudy):
        d = study.data
        if d.p_bursty > 1:
            raise ConfigError(f"data.p_bursty must be in [0, 1] (got {d.p_bursty})")
        if d.n_labels < 2:
            raise ConfigError(f"data.n_labels must be at least 2 (got {d.n_labels})")
        if d.n_items <= d.n_context:
            raise ConfigError(f"data.n_items ({d.n_items}) must exceed data.n_context ({d.n_context}): the IWL "
                              "test fills the context with distinct trained items other than the query's")
    else:
        if study.data.train_fraction >= 1:
            raise ConfigError(f"data.train_fraction must be in (0, 1) (got {study.data.train_fraction})")
        if study.data.modulus < 3:
            raise ConfigError(f"data.modulus must be at least 3 (got {study.data.modulus})")


def study_to_toml(study: ICLStudy | GrokkingStudy) -> str:
    """The resolved study as TOML that ``study_from_dict(tomllib.loads(...))`` reads back equal."""
    return dict_to_toml({"kind": study.kind, "name": study.name,
                         **{section: dataclasses.asdict(getattr(study, section)) for section in _SECTIONS}})

"""A study: task + model + training + probe + extraction, as frozen dataclasses.

A study is read from TOML (see ``tasks/streaming_parity.toml``), completed with defaults, checked
once, and then passed around as plain immutable data. Every problem is reported as a
:class:`~rnnautomata.errors.ConfigError` whose one-line message names the field and what is allowed.

Dotted overrides (``--set train.lr=0.05``) are applied to the raw TOML dict before validation, so an
override is checked exactly like the file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rnnautomata.data import TASK_FIELDS, TASKS
from rnnautomata.errors import ConfigError
from rnnautomata.fields import build_section, coerce_field, show_value
from rnnautomata.merge_registry import MERGERS
from rnnautomata.models import MODELS

__all__ = [
    "TaskConfig",
    "ModelConfig",
    "TransformerConfig",
    "TrainConfig",
    "ProbeConfig",
    "ExtractConfig",
    "Study",
    "read_toml",
    "apply_overrides",
    "load_study",
    "study_from_dict",
    "check_study_name",
    "study_to_dict",
    "study_to_toml",
    "toml_value",
]


@dataclass(frozen=True)
class TaskConfig:
    name: str = "streaming_parity"            # a key of rnnautomata.data.TASKS (`rnnautomata tasks`)
    k: int | None = None                      # modulus for mod_k_counting; None = task default
    path: str | None = None                   # machine JSON/DOT file for task "machine"
    train_min_length: int = 1                 # shortest training string
    train_max_length: int = 10                # longest training string
    train_set: str = "enumerate"              # "enumerate" every string, or "sample" train_samples per length
    train_samples: int = 256                  # strings per length when train_set = "sample"
    target: str = "last"                      # supervise the "last" position only, or "all" positions
    val_length: int = 50                      # length of validation strings
    val_samples: int = 256                    # number of validation strings
    test_lengths: tuple[int, ...] = (100, 1000, 10000)  # lengths for generalisation accuracy
    test_samples: int = 32                    # strings per test length


@dataclass(frozen=True)
class TransformerConfig:
    """``[model.transformer]``: the sizes of rnnautomata.models.transformer (docs/transformers.md)."""

    n_layers: int = 2                         # blocks
    d_model: int = 32                         # residual width d (the probed state has d units)
    n_heads: int = 2                          # attention heads per block
    d_head: int | None = None                 # width of a head; None = d_model // n_heads
    d_mlp: int | None = None                  # MLP width; None = 4 d_model (unused when attn_only)
    attn_only: bool = False                   # blocks without MLPs
    positional: str = "learned"               # "none", "learned", "sinusoidal" or "rope"
    max_length: int = 64                      # learned positions only: the longest string the model reads
                                              # (training, evaluation, probing and checking strings)
    init_std: float | None = None             # std of every weight matrix; None = 0.8 / sqrt(d_model)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "elman"                       # "elman", "gru", "lstm" (recurrent) or "transformer"
    # Recurrent archs only (a transformer's fields are in [model.transformer]):
    hidden_size: int = 100                    # units H
    nonlinearity: str = "relu"                # elman only: "relu" or "tanh"
    init: str = "xavier_normal"               # weight init: "xavier_normal", "xavier_uniform", "normal", or
                                              # "default" (torch's uniform ±1/√H, seeded; gain unused)
    init_gain: float = 0.1                    # gain (xavier) or std (normal) of the weights
    initial_state: float = 1.0                # every unit of h0 (and c0) is this value; 0 stalls ReLU nets
    learn_initial_state: bool = False         # make h0 a parameter
    transformer: TransformerConfig | None = None  # arch = "transformer" only: the [model.transformer] table
                                              # (None for recurrent archs; its defaults when left out)


#: architectures with their own sub-table [model.<arch>]
_ARCH_SECTIONS = {"transformer": TransformerConfig}
#: fields of [model] that only recurrent archs read
_RECURRENT_FIELDS = ("hidden_size", "nonlinearity", "init", "init_gain", "initial_state", "learn_initial_state")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgd"                    # "sgd" or "adam"
    lr: float = 0.02                          # learning rate
    momentum: float = 0.0                     # sgd momentum
    loss: str = "mse"                         # "mse" on one-hot targets, or "cross_entropy"
    batch_size: int = 128                     # strings per step (batches hold strings of one length)
    epochs: int = 1000                        # passes over the training set
    checkpoint_every: int = 5                 # epochs between checkpoints
    early_checkpoints: int = 16               # extra log-spaced checkpoints before the first regular one
    eval_every: int | None = 10               # epochs between evaluations at test lengths > 1000 (they dominate
                                              # evaluation time); shorter lengths are evaluated at every checkpoint;
                                              # None = all lengths at every checkpoint
    grad_clip: float | None = None            # max global grad norm; None = no clipping
    patience: int | None = None               # stop early once validation accuracy (at task.val_length, longer
                                              # than training) has not improved for this many regular
                                              # checkpoints, or has been 1.0 for this many; `epochs` is then the
                                              # budget. None = always train all epochs
    device: str = "cpu"                       # "cpu", "cuda", "cuda:0", ... (CLI --device overrides)


@dataclass(frozen=True)
class ProbeConfig:
    depth: int = 10                           # probe every prefix up to this length (2^(D+1)-1 for binary)
    mode: str = "enumerate"                   # "enumerate" all prefixes, or "sample" strings
    samples: int = 4096                       # strings of length `depth` when mode = "sample"
    lstm_state: str = "h"                     # LSTM only: probe its output "h" (what the readout sees), its
                                              # cell "c", or both "hc" (docs/guide.md has the evidence for h)
    # Transformers only (docs/transformers.md, "Which state"): which representation is a prefix's state
    state: str = "final"                      # "final" (after the final LayerNorm, what the unembedding reads)
                                              # or "resid_post.<l>" / "resid_mid.<l>" / "resid_pre.<l>" (block l)
    remove_position: bool = False             # subtract the mean state of the probed prefixes of each length
    metric: str = "euclidean"                 # "euclidean", or "cosine": merge by direction (unit-length states)


@dataclass(frozen=True)
class ExtractConfig:
    merger: str = "leader"                    # "leader" (the paper's greedy rule), "single_linkage", "kmeans"
    epsilon_scale: float = 0.01               # ε = scale × ‖per-unit std of all states over all checkpoints‖
    epsilon: float | None = None              # absolute ε; overrides epsilon_scale when set
    n_clusters: int | None = None             # for merger = "kmeans"
    nerode: bool = False                      # also measure the merge condition at every checkpoint: pair
                                              # precision/recall against the task's Nerode classes
    # The ε-free machine (rnnautomata.robust; the answer of `extract` and the run's verdicts). The
    # fields above are the ε rule, kept for the merge-dynamics counts the paper's figures mean.
    robust: bool = True                       # extract it at every checkpoint
    robust_max_nodes: int = 16384             # most probed prefixes it merges: the deepest complete tree,
                                              # up to probe.depth, with at most this many nodes
    refine_rounds: int = 5                    # counterexample rounds (re-probe, re-merge); 0 = check only
    check_strings: int = 256                  # strings per check against the network
    check_length: int = 50                    # their length (every prefix is compared)
    tolerance: float = 0.001                  # stop refining once at most this fraction of checked positions
                                              # disagree (0 = copy every error of the network found)


@dataclass(frozen=True)
class Study:
    name: str = "study"                       # run name (default output folder runs/<name>)
    kind: str = "automata"                    # always "automata" here; the other kinds (rnnautomata.studies.KINDS)
                                              # read their own config (e.g. rnnautomata.icl.config)
    seed: int = 0                             # one seed for init, data order and evaluation strings
    seeds: tuple[int, ...] | None = None      # train these seeds together as one batched model, each into
                                              # <out>/seed_XXXX/ (rnnautomata.batched); None = just `seed`
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)


_SECTIONS = {"task": TaskConfig, "model": ModelConfig, "train": TrainConfig, "probe": ProbeConfig, "extract": ExtractConfig}
_CHOICES = {
    "task.train_set": ("enumerate", "sample"),
    "task.target": ("last", "all"),
    "model.arch": tuple(MODELS),
    "model.transformer.positional": ("none", "learned", "sinusoidal", "rope"),
    "model.nonlinearity": ("relu", "tanh"),
    "model.init": ("xavier_normal", "xavier_uniform", "normal", "default"),
    "train.optimizer": ("sgd", "adam"),
    "train.loss": ("mse", "cross_entropy"),
    "probe.mode": ("enumerate", "sample"),
    "probe.lstm_state": ("h", "c", "hc"),
    "probe.metric": ("euclidean", "cosine"),
    "extract.merger": tuple(MERGERS),
    "kind": ("automata",),
}
_POSITIVE = {
    "task.train_min_length", "task.train_max_length", "task.train_samples", "task.val_length",
    "task.val_samples", "task.test_samples", "model.hidden_size", "train.lr", "train.batch_size",
    "train.epochs", "train.checkpoint_every", "probe.depth", "probe.samples", "extract.epsilon_scale",
    "extract.epsilon", "extract.n_clusters", "train.eval_every", "train.grad_clip", "task.k",
    "extract.robust_max_nodes", "extract.check_strings", "extract.check_length", "train.patience",
    "task.test_lengths", "model.transformer.n_layers", "model.transformer.d_model", "model.transformer.n_heads",
    "model.transformer.d_head", "model.transformer.d_mlp", "model.transformer.max_length", "model.transformer.init_std",
}
_NONNEGATIVE = {"seed", "seeds", "train.early_checkpoints", "extract.refine_rounds"}
_MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit integer
# A study name becomes the folder runs/<name>: letters, digits and . _ - + = @ , only, no "..".
_NAME = re.compile(r"[\w.+=@,-]+")


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file into a dict, with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} not found; see `rnnautomata tasks` for the shipped studies")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file") from None


def _parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, strings, arrays); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    """Return a copy of ``raw`` with ``key.sub=value`` overrides applied.

    Examples
    --------
    >>> apply_overrides({"train": {"lr": 0.02}}, ["train.lr=0.05"])["train"]["lr"]
    0.05
    """
    out = json.loads(json.dumps(raw, default=str)) if raw else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value, e.g. train.lr=0.05")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override key {key!r} is empty or has an empty part")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = _parse_value(text.strip())
    return out


def check_study_name(name: Any) -> str:
    """``name`` if it can be the run folder ``runs/<name>``; else a ConfigError naming the problem.

    Examples
    --------
    >>> check_study_name("parity_h100")
    'parity_h100'
    >>> check_study_name("../../x")
    Traceback (most recent call last):
    ...
    rnnautomata.errors.ConfigError: name = '../../x' cannot be a folder name: use letters, digits and . _ - + = @ , without path separators or '..'
    """
    if not isinstance(name, str):
        raise ConfigError(f"name must be a string (got {show_value(name)})")
    if not _NAME.fullmatch(name) or ".." in name or name.startswith("."):
        raise ConfigError(
            f"name = {show_value(name)} cannot be a folder name: use letters, digits and . _ - + = @ , "
            "without path separators or '..'"
        )
    return name


def _check_value(key: str, value: Any) -> None:
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"{key} = {show_value(value)} is not allowed; choose one of: {', '.join(_CHOICES[key])}")
    values = value if isinstance(value, tuple) else (value,)
    what = f"every entry of {key}" if isinstance(value, tuple) else key
    shown = show_value(list(value) if isinstance(value, tuple) else value)
    if key in _POSITIVE and any(v is not None and v <= 0 for v in values):
        raise ConfigError(f"{what} must be positive (got {shown})")
    if key in _NONNEGATIVE and any(v is not None and v < 0 for v in values):
        raise ConfigError(f"{what} must be 0 or more (got {shown})")
    if key in ("seed", "seeds") and any(v is not None and v > _MAX_SEED for v in values):
        raise ConfigError(f"{what} must be below 2**63 (got {shown})")
    if key == "name":
        check_study_name(value)


def study_from_dict(raw: Mapping[str, Any]) -> Study:
    """Validate a raw study dict (from TOML) and build a :class:`Study`."""
    if not isinstance(raw, Mapping):
        raise ConfigError("a study must be a TOML table")
    top = {f.name: f for f in fields(Study) if f.name not in _SECTIONS}
    unknown = sorted(set(raw) - set(top) - set(_SECTIONS), key=str)
    if unknown:
        raise ConfigError(
            f"unknown key {show_value(unknown[0])} in the study; allowed: {', '.join(list(top) + list(_SECTIONS))}"
        )
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(Study)
    for name in top:
        if name in raw:
            kwargs[name] = coerce_field(name, raw[name], hints[name])
            _check_value(name, kwargs[name])
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if section == "model":
            kwargs[section] = _model_section(table)
        else:
            kwargs[section] = build_section(cls, table, section, _check_value)
    study = Study(**kwargs)
    _cross_check(study)
    return study


def _model_section(table: Any) -> ModelConfig:
    """[model] with its architecture's own sub-table ([model.transformer]), each checked."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[model] must be a table, got {type(table).__name__}")
    flat = {k: v for k, v in table.items() if k not in _ARCH_SECTIONS}
    model = build_section(ModelConfig, flat, "model", _check_value)
    for arch, cls in _ARCH_SECTIONS.items():
        if arch in table and model.arch != arch:
            raise ConfigError(f"[model.{arch}] applies to model.arch = {arch!r} only (model.arch = {model.arch!r}); remove it")
        if model.arch == arch:
            model = dataclasses.replace(model, **{arch: build_section(cls, table.get(arch, {}), f"model.{arch}", _check_value)})
    if model.arch in _ARCH_SECTIONS:
        defaults = ModelConfig()
        for name in _RECURRENT_FIELDS:
            if getattr(model, name) != getattr(defaults, name):
                raise ConfigError(f"model.{name} applies to recurrent archs only; a {model.arch}'s fields are in "
                                  f"[model.{model.arch}]")
    return model


def _longest_string(study: Study) -> tuple[str, int, int]:
    """The field that makes the model read its longest string, the field's value, and that length."""
    t, e, depth = study.task, study.extract, study.probe.depth
    lengths = {"task.train_max_length": (t.train_max_length,) * 2, "task.val_length": (t.val_length,) * 2,
               "task.test_lengths": (max(t.test_lengths),) * 2,
               # refinement checks strings of max(check_length, robust depth + 1)
               "probe.depth": (depth, depth + 1 if e.robust else depth)}
    if e.robust:
        lengths["extract.check_length"] = (e.check_length,) * 2
    name, (value, length) = max(lengths.items(), key=lambda kv: kv[1][1])
    return name, value, length


def _check_transformer(study: Study) -> None:
    tc = study.model.transformer
    d_head = tc.d_model // tc.n_heads if tc.d_head is None else tc.d_head
    if tc.d_head is None and tc.d_model % tc.n_heads:
        raise ConfigError(f"model.transformer.d_model ({tc.d_model}) is not a multiple of n_heads ({tc.n_heads}); "
                          "change one or set d_head")
    if tc.positional == "rope" and d_head % 2:
        raise ConfigError(f"model.transformer.positional = 'rope' needs an even head width (d_head = {d_head})")
    if tc.positional == "learned":
        field_name, value, length = _longest_string(study)
        if length > tc.max_length:
            reads = "" if length == value else f" (its checks read strings of {length})"
            raise ConfigError(
                f"{field_name} = {value}{reads} is longer than model.transformer.max_length = {tc.max_length} (the learned "
                "positional table); raise max_length or use positional = 'sinusoidal', 'rope' or 'none'"
            )


def _check_probe_state(study: Study) -> None:
    """probe.state / remove_position / metric: transformers only, and a block the model has."""
    p, defaults = study.probe, ProbeConfig()
    if study.model.arch != "transformer":
        for name in ("state", "remove_position", "metric"):
            if getattr(p, name) != getattr(defaults, name):
                raise ConfigError(f"probe.{name} applies to model.arch = 'transformer' only (model.arch = {study.model.arch!r})")
        return
    from rnnautomata.probe import hook_of_state

    try:
        hook_of_state(p.state, study.model.transformer.n_layers)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _cross_check(study: Study) -> None:
    if study.model.arch == "transformer":
        _check_transformer(study)
    _check_probe_state(study)
    t = study.task
    if t.train_min_length > t.train_max_length:
        raise ConfigError(
            f"task.train_min_length ({t.train_min_length}) exceeds task.train_max_length ({t.train_max_length})"
        )
    if study.seeds is not None and len(set(study.seeds)) != len(study.seeds):
        raise ConfigError("seeds contains duplicates")
    used = TASK_FIELDS.get(t.name, ()) if t.name in TASKS else None
    for name in sorted({f for names in TASK_FIELDS.values() for f in names}):
        if used is not None and name not in used and getattr(t, name) is not None:
            users = [task for task, names in TASK_FIELDS.items() if name in names]
            raise ConfigError(
                f"task.{name} does not apply to task {show_value(t.name)} (only to {', '.join(users)}); remove it"
            )
    if not 0.0 <= study.extract.tolerance < 1.0:
        raise ConfigError(f"extract.tolerance must lie in [0, 1) (got {study.extract.tolerance})")
    if study.extract.merger == "kmeans" and study.extract.n_clusters is None:
        raise ConfigError("extract.merger = 'kmeans' needs extract.n_clusters")
    if study.probe.mode == "enumerate" and study.probe.depth > 22:
        raise ConfigError(f"probe.depth = {study.probe.depth} enumerates too many prefixes; use probe.mode = 'sample'")


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read, override and validate a study TOML file (a ``[sweep]`` table, rnnautomata.sweep's, is left out)."""
    raw = apply_overrides(read_toml(path), overrides)
    raw.pop("sweep", None)
    if "name" not in raw:
        raw["name"] = Path(path).stem
    return study_from_dict(raw)


def study_to_dict(study: Study) -> dict:
    """The resolved study as a plain dict (None fields omitted, as TOML has no null)."""

    def clean(d: dict) -> dict:
        return {k: (clean(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v)
                for k, v in d.items() if v is not None}

    d = clean(dataclasses.asdict(study))
    if study.model.arch in _ARCH_SECTIONS:  # a recurrent field's default means nothing to this arch
        d["model"] = {k: v for k, v in d["model"].items() if k not in _RECURRENT_FIELDS}
    return d


def toml_value(v: Any) -> str:
    """One TOML value (bool, number, string or array of them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")  # pragma: no cover


def dict_to_toml(d: Mapping[str, Any], prefix: str = "") -> str:
    """A nested dict as TOML: its scalars (None left out: TOML has no null), then each sub-dict as a
    ``[prefix.key]`` table after a blank line, recursively, in the dict's order.

    >>> print(dict_to_toml({"kind": "icl", "train": {"lr": 0.1, "seed": None}}), end="")
    kind = "icl"
    <BLANKLINE>
    [train]
    lr = 0.1
    """
    lines = [f"{k} = {toml_value(v)}" for k, v in d.items() if v is not None and not isinstance(v, Mapping)]
    for k, v in d.items():
        if isinstance(v, Mapping):
            lines.append(f"\n[{prefix}{k}]")
            lines.append(dict_to_toml(v, f"{prefix}{k}.").rstrip("\n"))
    return "\n".join(line for line in lines if line) + "\n"


def study_to_toml(study: Study) -> str:
    """Write the resolved study as TOML that :func:`load_study` reads back to an equal Study."""
    d = study_to_dict(study)
    lines = [f"{k} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for section in _SECTIONS:
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in d[section].items() if not isinstance(v, dict)]
        for sub, table in d[section].items():
            if isinstance(table, dict):
                lines.append(f"\n[{section}.{sub}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"

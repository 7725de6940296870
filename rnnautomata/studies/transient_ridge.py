"""Study kind ``transient_ridge``: the transient ridge of Carroll, Hoogland, Farrugia-Roberts & Murfet
(2025, arXiv 2501.17745), re-implemented.

A 2-layer transformer (:mod:`rnnautomata.models.icl_transformer`) learns in-context linear
regression whose tasks come from a pool of M tasks (:mod:`rnnautomata.data.task_pools`; nested
pools, M = "inf" for a fresh Gaussian task per sequence). Every ``train.eval_every`` steps a row of
metrics.jsonl records, on fixed batches drawn once from the study's seeds:

- ``dist/ridge``, ``dist/dmmse``: mean squared distance of the model's predictions to the ridge
  and dMMSE_M predictions (:mod:`rnnautomata.icl.baselines`), averaged over the K positions of a
  fixed in-distribution batch (tasks from the pool); ``dist/ridge_by_position``,
  ``dist/dmmse_by_position`` keep the K per-position values. For M = inf, dMMSE_∞ is ridge.
- ``loss/eval`` (that batch), ``loss/ood`` (a fixed batch of fresh Gaussian tasks, q_∞).
- ``llc/mean``, ``llc/std`` every ``measures.llc_every`` steps and at the end (SGLD,
  :mod:`rnnautomata.icl.llc`, burn-in excluded).

The transient ridge: for intermediate M the model first comes close to ridge (dist/ridge falls,
loss/ood dips), then specialises to its M tasks (dist/ridge rises again, dist/dmmse falls).
Across a sweep over M, :meth:`TransientRidge.sweep_figures` draws the joint trajectory PCA
(:mod:`rnnautomata.icl.trajectory_pca`) and the phase picture (:func:`sweep_phase_figure`): every
run's distances and OOD loss over training, and against M the spread over seeds of the final
distances, of the step of the OOD-loss minimum and of the final LLC. ``rnnautomata report RUN``
writes a run's report.html (:mod:`rnnautomata.measures_report`, with the baselines' losses).

Usage::

    rnnautomata run tasks/transient_ridge_small.toml --set data.n_tasks=16
    rnnautomata sweep tasks/transient_ridge_small.toml          # M x seeds, then the PCA
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rnnautomata.errors import CheckpointError, ConfigError
from rnnautomata.fields import positive_numbers
from rnnautomata.studies.base import StudyKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TRData", "TRModel", "TRTrain", "TRMeasures", "TransientRidgeStudy", "TransientRidge",
           "load_transient_ridge", "FixedBatches", "fixed_batches", "summarise_run", "read_study",
           "checkpoint_predictions", "pca_of_runs", "PHASE_KEYS", "SWEEP_MEASURES", "sweep_points",
           "sweep_phase_figure", "sweep_figure"]


# ------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TRData:
    x_dim: int = 8                      # D, input dimension; x ~ N(0, I_D)
    n_examples: int = 16                # K, (x, y) pairs per sequence; the loss averages over all K prefixes
    noise_var: float = 0.125            # σ², label-noise variance (also the baselines' known noise)
    n_tasks: int | str = "inf"          # M: the first M tasks of the task sequence; "inf" = a fresh N(0, I) task per sequence
    task_seed: int = 0                  # seeds the task sequence t_1, t_2, ... (keep it equal across runs of one sweep)


@dataclass(frozen=True)
class TRModel:
    d_model: int = 64                   # residual width (timaeus-research/icl: embed 64)
    d_mlp: int = 64                     # MLP width (timaeus-research/icl: 64)
    n_heads: int = 4                    # attention heads per block
    n_layers: int = 2                   # blocks
    max_examples: int | None = None     # examples the learned position table serves (2 rows each); None = data.n_examples
    init_std: float | None = None       # std of the normal W_* init; None = 0.8 / √d_model


@dataclass(frozen=True)
class TRTrain:
    optimizer: str = "adam"             # "adam" (betas 0.9, 0.999) or "sgd"
    lr: float = 1e-3                    # (peak) learning rate
    schedule: str = "constant"          # "constant" or "one_cycle" (linear up to lr at half-way, then linearly down)
    batch_size: int = 256               # fresh sequences per step
    epochs: int = 20000                 # optimiser steps (named as in the other studies)
    eval_every: int = 100               # steps between metric rows
    checkpoint_every: int = 1000        # steps between checkpoints (a multiple of eval_every)
    seed: int = 0                       # seeds the init and the training batches


@dataclass(frozen=True)
class TRMeasures:
    n_eval: int = 1024                  # fixed in-distribution batch (tasks from the pool): dist/*, loss/eval
    n_ood: int = 1024                   # fixed batch of fresh Gaussian tasks: loss/ood
    n_pca: int = 512                    # fixed batch of task t_1 for the joint trajectory PCA
    probe_seed: int = 0                 # seeds the fixed batches (with data.task_seed; not train.seed)
    llc_every: int = 0                  # steps between LLC estimates (a multiple of eval_every), also at the end; 0 = none
    llc_samples: int = 1024             # n: fixed training-distribution sequences the SGLD loss is on
    llc_batch_size: int | None = None   # SGLD minibatch; None = all llc_samples every step
    llc_step_size: float = 1e-4         # ε
    llc_localization: float = 100.0     # γ
    llc_nbeta: float | None = None      # nβ; None = n / log n
    llc_chains: int = 2                 # chains, each started at the checkpoint
    llc_draws: int = 100                # draws per chain in the average
    llc_burn_in: int = 50               # steps per chain left out of the average


@dataclass(frozen=True)
class TransientRidgeStudy:
    kind: str = "transient_ridge"
    name: str = "transient_ridge"
    data: TRData = field(default_factory=TRData)
    model: TRModel = field(default_factory=TRModel)
    train: TRTrain = field(default_factory=TRTrain)
    measures: TRMeasures = field(default_factory=TRMeasures)

    @property
    def n_tasks(self) -> float:
        """M as a number (math.inf for "inf")."""
        return math.inf if self.data.n_tasks == "inf" else float(self.data.n_tasks)

    @property
    def max_examples(self) -> int:
        return self.model.max_examples if self.model.max_examples is not None else self.data.n_examples


_SECTIONS = ("data", "model", "train", "measures")
_CHOICES = {"train.optimizer": ("adam", "sgd"), "train.schedule": ("constant", "one_cycle")}
_NONNEGATIVE = {"data.task_seed", "train.seed", "measures.probe_seed", "measures.llc_every", "measures.llc_burn_in"}


def _check_value(key: str, value: Any) -> None:
    if key == "data.n_tasks":
        if isinstance(value, str) and value != "inf":
            raise ConfigError(f'data.n_tasks must be a positive integer or "inf" (got {value!r})')
        if isinstance(value, int) and value <= 0:
            raise ConfigError(f'data.n_tasks must be a positive integer or "inf" for a fresh task per sequence (got {value})')
        return
    _positive(key, value)


_positive = positive_numbers(_CHOICES, _NONNEGATIVE)


def load_transient_ridge(raw: Mapping[str, Any]) -> TransientRidgeStudy:
    """Validate a parsed study dict into a frozen :class:`TransientRidgeStudy` (one-line ConfigErrors)."""
    from rnnautomata.fields import build_study

    if isinstance(raw, Mapping) and raw.get("kind", "transient_ridge") != "transient_ridge":
        raise ConfigError(f"kind = {raw.get('kind')!r} is not 'transient_ridge'")
    data = raw.get("data", {}) if isinstance(raw, Mapping) else None
    if isinstance(data, Mapping) and isinstance(data.get("n_tasks"), float) and data["n_tasks"] == math.inf:
        raw = {**raw, "data": {**data, "n_tasks": "inf"}}   # TOML's bare inf (``--set data.n_tasks=inf``)
    study = build_study(TransientRidgeStudy, raw, _SECTIONS, _check_value)
    _cross_check(study)
    return study


def _cross_check(study: TransientRidgeStudy) -> None:
    d, m, t, me = study.data, study.model, study.train, study.measures
    if d.n_examples > study.max_examples:
        raise ConfigError(f"data.n_examples ({d.n_examples}) is larger than model.max_examples ({m.max_examples}), "
                          "the context the position table serves; raise model.max_examples or lower data.n_examples")
    if m.d_model % m.n_heads:
        raise ConfigError(f"model.d_model ({m.d_model}) must be a multiple of model.n_heads ({m.n_heads})")
    if t.checkpoint_every % t.eval_every or t.epochs % t.eval_every:
        raise ConfigError(f"train.checkpoint_every ({t.checkpoint_every}) and train.epochs ({t.epochs}) must be "
                          f"multiples of train.eval_every ({t.eval_every})")
    if me.llc_every % t.eval_every:
        raise ConfigError(f"measures.llc_every ({me.llc_every}) must be a multiple of train.eval_every ({t.eval_every})")
    if me.llc_samples < 2:
        raise ConfigError(f"measures.llc_samples must be at least 2 (got {me.llc_samples})")


def study_toml(study: TransientRidgeStudy) -> str:
    """The resolved study as TOML that :func:`load_transient_ridge` reads back equal."""
    from rnnautomata.config import dict_to_toml

    return dict_to_toml({"kind": study.kind, "name": study.name,
                         **{section: dataclasses.asdict(getattr(study, section)) for section in _SECTIONS}})


def read_study(run_dir: Path) -> TransientRidgeStudy:
    """The study of a ``transient_ridge`` run folder (its study.toml)."""
    from rnnautomata.runs import RunDir

    run = RunDir(Path(run_dir))
    if not run.study_path.is_file():
        raise CheckpointError(f"{run.root} has no study.toml; it was not written by `rnnautomata run`")
    try:
        return load_transient_ridge(tomllib.loads(run.study_path.read_text()))
    except (tomllib.TOMLDecodeError, ConfigError) as err:
        raise CheckpointError(f"{run.study_path} is not a valid transient_ridge study ({err})") from None


# ------------------------------------------------------------------------------- data and batches
def _pool(study: TransientRidgeStudy) -> np.ndarray | None:
    from rnnautomata.data.task_pools import task_sequence

    d = study.data
    return None if d.n_tasks == "inf" else task_sequence(int(d.n_tasks), d.x_dim, d.task_seed)


def _sampler(study: TransientRidgeStudy, pool: np.ndarray | None):
    from rnnautomata.data.task_pools import PooledRegression

    d = study.data
    return PooledRegression(d.x_dim, d.n_examples, d.noise_var, pool)


@dataclass(frozen=True)
class FixedBatches:
    """The batches drawn once from the study's seeds (never from the step): ``eval`` (tasks from the
    pool), ``ood`` (fresh Gaussian tasks), ``pca`` (every sequence has task t_1), ``llc`` (the
    SGLD dataset, tasks from the pool); and the baselines' predictions on ``eval`` and ``pca``."""

    eval: Any
    ood: Any
    pca: Any
    llc: Any
    ridge_eval: Any          # (B, K) float64
    dmmse_eval: Any          # (B, K) float64; ridge again for M = inf
    ridge_pca: Any
    dmmse_pca: Any


def fixed_batches(study: TransientRidgeStudy) -> FixedBatches:
    """The study's fixed batches: a function of (data, measures) only, so a resumed run, a
    ``track`` and another seed's run of the same M all see the same batches."""
    from rnnautomata.data.task_pools import task_sequence
    from rnnautomata.icl.baselines import dmmse_predictions, ridge_predictions

    d, me = study.data, study.measures
    pool = _pool(study)
    base = [me.probe_seed, d.task_seed]
    eval_b = _sampler(study, pool).sample(me.n_eval, np.random.default_rng([*base, 1]))
    ood_b = _sampler(study, None).sample(me.n_ood, np.random.default_rng([*base, 2]))
    t1 = task_sequence(1, d.x_dim, d.task_seed)
    pca_b = _sampler(study, None).sample_tasks(np.repeat(t1, me.n_pca, 0), np.random.default_rng([*base, 3]))
    llc_b = _sampler(study, pool).sample(me.llc_samples, np.random.default_rng([*base, 4]))

    def dmmse(b):
        return ridge_predictions(b.xs, b.ys, d.noise_var) if pool is None else dmmse_predictions(b.xs, b.ys, pool, d.noise_var)

    return FixedBatches(eval_b, ood_b, pca_b, llc_b, ridge_predictions(eval_b.xs, eval_b.ys, d.noise_var), dmmse(eval_b),
                        ridge_predictions(pca_b.xs, pca_b.ys, d.noise_var), dmmse(pca_b))


def _new_model(study: TransientRidgeStudy, device: str):
    import torch

    from rnnautomata.models.icl_transformer import build_regression_transformer

    m = study.model
    gen = torch.Generator().manual_seed(study.train.seed)
    model = build_regression_transformer(study.data.x_dim, study.max_examples, m.d_model, m.d_mlp, m.n_heads,
                                         m.n_layers, m.init_std, gen)
    return model.to(device)


def _lr_at(study: TransientRidgeStudy, step: int) -> float:
    t = study.train
    if t.schedule == "constant":
        return t.lr
    return t.lr * max(1e-3, 1.0 - abs(2.0 * step / t.epochs - 1.0))


def _mse(model, xs, ys):
    return ((model(xs, ys) - ys) ** 2).mean()


# ------------------------------------------------------------------------------------- measures
def _measure(model, study: TransientRidgeStudy, fixed: FixedBatches, device: str) -> dict:
    """dist/*, loss/eval, loss/ood of the model at its current weights (no grad)."""
    import torch

    with torch.no_grad():
        ev = fixed.eval
        pred = model(ev.xs.to(device), ev.ys.to(device)).double().cpu()           # (B, K)
        d_ridge = ((pred - fixed.ridge_eval) ** 2).mean(0)                           # (K,)
        d_dmmse = ((pred - fixed.dmmse_eval) ** 2).mean(0)                           # (K,)
        ood = fixed.ood
        loss_ood = float(_mse(model, ood.xs.to(device), ood.ys.to(device)))
    return {"loss/eval": float(((pred - ev.ys.double()) ** 2).mean()), "loss/ood": loss_ood,
            "dist/ridge": float(d_ridge.mean()), "dist/dmmse": float(d_dmmse.mean()),
            "dist/ridge_by_position": [round(float(v), 8) for v in d_ridge],
            "dist/dmmse_by_position": [round(float(v), 8) for v in d_dmmse]}


def _llc(model, study: TransientRidgeStudy, fixed: FixedBatches, step: int, device: str) -> dict:
    import torch

    from rnnautomata.icl.llc import SGLD, estimate_llc

    me = study.measures
    sampler = SGLD(step_size=me.llc_step_size, localization=me.llc_localization, nbeta=me.llc_nbeta,
                   chains=me.llc_chains, draws=me.llc_draws, burn_in=me.llc_burn_in, batch_size=me.llc_batch_size)
    gen = torch.Generator().manual_seed(study.train.seed * 1_000_003 + step)
    with torch.enable_grad():
        try:
            res = estimate_llc(model, _mse, (fixed.llc.xs.to(device), fixed.llc.ys.to(device)), sampler, gen)
        except FloatingPointError as err:
            return {"llc/mean": None, "llc/std": None, "llc/error": str(err)}
    return {"llc/mean": res.mean, "llc/std": res.std}


def _llc_due(study: TransientRidgeStudy, step: int) -> bool:
    every = study.measures.llc_every
    return every > 0 and (step % every == 0 or step == study.train.epochs)


# ------------------------------------------------------------------------------------------ run
def run_transient_ridge(study: TransientRidgeStudy, out: Path, device: str = "cpu", progress: bool = True,
                        render: bool = True) -> dict:
    """Train, record the metrics, write summary.json and (``render``) figures; returns the summary."""
    import torch

    from rnnautomata.icl.study import full_batch_descent
    from rnnautomata.runs import RunDir, atomic_write_json

    run = RunDir(Path(out))
    with run.locked():
        t = study.train
        fixed = fixed_batches(study)
        sampler = _sampler(study, _pool(study))
        model = _new_model(study, device)
        opt = (torch.optim.Adam(model.parameters(), lr=t.lr, betas=(0.9, 0.999)) if t.optimizer == "adam"
               else torch.optim.SGD(model.parameters(), lr=t.lr))

        def train_loss(step):  # the batch depends only on (seed, step): a resumed run sees the same batches
            for group in opt.param_groups:
                group["lr"] = _lr_at(study, step)
            batch = sampler.sample(t.batch_size, np.random.default_rng([t.seed, 3, step])).to(device)
            return _mse(model, batch.xs, batch.ys), None

        def record(step, loss, _):
            row = {"step": step, "train/loss": loss.item(), "train/lr": _lr_at(study, step)}
            row.update(_measure(model, study, fixed, device))
            if _llc_due(study, step):
                row.update(_llc(model, study, fixed, step, device))
            return row

        _install_toml(study)
        full_batch_descent(run, study, device, model, opt, train_loss, record,
                           lambda loss: {"kind": study.kind, "loss": repr(loss.item())}, progress)
        atomic_write_json(run.root / "baselines.json", _baseline_losses(study, fixed))
        run.write_manifest(status="complete", steps=run.steps())
        summary = summarise_run(run.root)
        atomic_write_json(run.root / "summary.json", summary)
    if render:
        render_run(run.root)
    return summary


def _install_toml(study: TransientRidgeStudy) -> None:
    """``icl.study.open_run`` writes study.toml with ``icl.config.study_to_toml``, which serialises
    the same four sections (data, model, train, measures) as :func:`study_toml`; check they agree."""
    from rnnautomata.icl.config import study_to_toml

    if study_to_toml(study) != study_toml(study):  # pragma: no cover - guards a change in icl.config
        raise CheckpointError("icl.config.study_to_toml no longer writes a transient_ridge study as it reads back")


def _baseline_losses(study: TransientRidgeStudy, fixed: FixedBatches) -> dict:
    """The baselines' own losses on the fixed batches (per position and mean): the floors of the curves."""
    from rnnautomata.icl.baselines import dmmse_predictions, prefix_mse, ridge_predictions

    d = study.data
    pool = _pool(study)
    ood = fixed.ood
    ridge_ood = ridge_predictions(ood.xs, ood.ys, d.noise_var)
    dmmse_ood = ridge_ood if pool is None else dmmse_predictions(ood.xs, ood.ys, pool, d.noise_var)
    out = {}
    for name, pred, ys in (("ridge/eval", fixed.ridge_eval, fixed.eval.ys), ("dmmse/eval", fixed.dmmse_eval, fixed.eval.ys),
                           ("ridge/ood", ridge_ood, ood.ys), ("dmmse/ood", dmmse_ood, ood.ys)):
        per = prefix_mse(pred, ys)
        out[name] = {"mean": float(per.mean()), "by_position": [float(v) for v in per]}
    return out


# ---------------------------------------------------------------------------------- summarise
#: dist/ridge counts as transient when it fell to at most this share of its first value and
#: then rose to at least 1 / this share of its minimum by the end
TRANSIENT_FACTOR = 0.5


def summarise_run(run_dir: Path) -> dict:
    """Flat scalars of a finished run (one row of a sweep's aggregate.csv)."""
    from rnnautomata.runs import RunDir

    run = RunDir(Path(run_dir))
    study = read_study(run.root)
    rows = [r for r in run.read_metrics() if "dist/ridge" in r]
    if not rows:
        raise CheckpointError(f"{run.root} has no metric rows yet; run `rnnautomata run` first")
    steps = np.array([r["step"] for r in rows])
    ridge = np.array([r["dist/ridge"] for r in rows])
    dmmse = np.array([r["dist/dmmse"] for r in rows])
    ood = np.array([r["loss/ood"] for r in rows])
    i_ridge, i_ood = int(ridge.argmin()), int(ood.argmin())
    llc_rows = [r for r in rows if r.get("llc/mean") is not None]
    transient = bool(i_ridge < len(rows) - 1 and ridge[i_ridge] <= TRANSIENT_FACTOR * ridge[0]
                     and ridge[-1] >= ridge[i_ridge] / TRANSIENT_FACTOR)
    final = rows[-1]
    return {
        "n_tasks": study.n_tasks, "seed": study.train.seed, "steps": int(steps[-1]),
        "final_train_loss": final["train/loss"], "final_loss_eval": final["loss/eval"],
        "final_dist_ridge": float(ridge[-1]), "final_dist_dmmse": float(dmmse[-1]),
        "final_closer_to": "dmmse" if dmmse[-1] < ridge[-1] else "ridge",
        "min_dist_ridge": float(ridge[i_ridge]), "min_dist_ridge_step": int(steps[i_ridge]),
        "final_loss_ood": float(ood[-1]), "min_loss_ood": float(ood[i_ood]), "min_loss_ood_step": int(steps[i_ood]),
        "ridge_transient": transient,
        "final_llc": llc_rows[-1]["llc/mean"] if llc_rows else None,
        "final_llc_std": llc_rows[-1]["llc/std"] if llc_rows else None,
    }


# ------------------------------------------------------------------------------------ track
def track_run(run_dir: Path, device: str = "cpu", llc: bool = True) -> dict:
    """Recompute dist/*, loss/eval, loss/ood (and the LLC where due) at every checkpoint; measures.json."""
    from rnnautomata.loop import load_weights
    from rnnautomata.runs import RunDir, atomic_write_json

    run = RunDir(Path(run_dir))
    study = read_study(run.root)
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.root} has no checkpoints yet; run `rnnautomata run` first")
    fixed = fixed_batches(study)
    model = _new_model(study, device)
    rows = []
    for s in steps:
        load_weights(run, s, model)
        row = {"step": s, **_measure(model, study, fixed, device)}
        if llc and _llc_due(study, s):
            row.update(_llc(model, study, fixed, s, device))
        rows.append(row)
    out = {"steps": steps, "checkpoints": rows}
    atomic_write_json(run.root / "measures.json", out)
    return out


def checkpoint_predictions(run_dir: Path, device: str = "cpu") -> tuple[list[int], np.ndarray]:
    """The model's predictions on the run's fixed PCA batch at every checkpoint: (steps, (T, B·K))."""
    import torch

    from rnnautomata.icl.study import model_tensors
    from rnnautomata.runs import RunDir, load_checkpoint

    run = RunDir(Path(run_dir))
    study = read_study(run.root)
    fixed = fixed_batches(study)
    model = _new_model(study, device)
    steps, preds = run.steps(), []
    for s in steps:
        model.load_state_dict(model_tensors(load_checkpoint(run.checkpoint_path(s))[0]))
        with torch.no_grad():
            preds.append(model(fixed.pca.xs.to(device), fixed.pca.ys.to(device)).double().cpu().reshape(-1).numpy())
    return steps, np.stack(preds)


#: the fields that fix the PCA batch: runs of one joint PCA must agree on them
PCA_FIELDS = ("data.x_dim", "data.n_examples", "data.noise_var", "data.task_seed", "measures.n_pca", "measures.probe_seed")


def _field(study: TransientRidgeStudy, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(study, section), name)


def pca_of_runs(run_dirs: Sequence[Path], out_dir: Path | None = None, n_components: int = 2) -> dict:
    """Joint trajectory PCA over the checkpoints of several ``transient_ridge`` runs.

    The runs must share the PCA batch (:data:`PCA_FIELDS`; otherwise a one-line ConfigError). Ridge
    and each run's dMMSE_M on that batch are projected, not fitted. Writes
    ``out_dir/trajectory_pca.{png,svg}`` and ``trajectory_pca.json`` when ``out_dir`` is given.

    Returns ``{"explained_variance_ratio": [...], "runs": {label: {"steps", "coords"}},
    "references": {name: coords}, "figure": [paths]}``.
    """
    from rnnautomata.icl import figures
    from rnnautomata.icl.trajectory_pca import TrajectoryPCA, trajectory_pca_figure
    from rnnautomata.runs import atomic_write_json

    if not run_dirs:
        raise ConfigError("the joint trajectory PCA needs at least one run folder")
    studies = [read_study(Path(r)) for r in run_dirs]
    for key in PCA_FIELDS:
        values = {_field(s, key) for s in studies}
        if len(values) > 1:
            raise ConfigError(f"the runs disagree on {key} ({sorted(map(str, values))}), so their PCA batches differ; "
                              "a joint trajectory PCA needs one fixed batch")
    labels, trajectories, steps = [], [], []
    for r, s in zip(run_dirs, studies):
        st, pred = checkpoint_predictions(Path(r))
        labels.append(f"M={s.data.n_tasks} seed={s.train.seed}")
        trajectories.append(pred)
        steps.append(st)
    pca = TrajectoryPCA(n_components).fit(np.concatenate(trajectories))
    fixed = fixed_batches(studies[0])
    refs = {"ridge": fixed.ridge_pca.reshape(-1).numpy()}
    for s in sorted({s for s in studies if s.data.n_tasks != "inf"}, key=lambda s: s.n_tasks):
        refs.setdefault(f"dMMSE M={s.data.n_tasks}", fixed_batches(s).dmmse_pca.reshape(-1).numpy())
    coords = {lab: pca.transform(p) for lab, p in zip(labels, trajectories)}
    ref_coords = {k: pca.transform(v) for k, v in refs.items()}
    out = {"explained_variance_ratio": pca.explained_variance_ratio_.tolist(),
           "runs": {lab: {"steps": st, "coords": coords[lab].tolist()} for lab, st in zip(labels, steps)},
           "references": {k: v.tolist() for k, v in ref_coords.items()}, "figure": []}
    if out_dir is not None and n_components >= 2:
        out_dir = Path(out_dir)
        fig = trajectory_pca_figure(coords, ref_coords, pca.explained_variance_ratio_,
                                    "joint trajectory PCA of predictions on the t_1 batch")
        out["figure"] = [str(out_dir / n) for n in figures.save_figure(fig, out_dir / "trajectory_pca")]
        atomic_write_json(out_dir / "trajectory_pca.json", out)
    return out


# ----------------------------------------------------------------------------------- figures
def render_run(run_dir: Path) -> list[Path]:
    """figures/transient_ridge.{png,svg}: losses, distances to the baselines, loss/ood, LLC."""
    from rnnautomata import plotting
    from rnnautomata.icl import figures
    from rnnautomata.runs import RunDir

    run = RunDir(Path(run_dir))
    study = read_study(run.root)
    rows = [r for r in run.read_metrics() if "dist/ridge" in r]
    if not rows:
        raise CheckpointError(f"{run.root} has no metric rows yet; run `rnnautomata run` first")
    base = {}
    if (run.root / "baselines.json").is_file():
        import json

        base = json.loads((run.root / "baselines.json").read_text())
    steps = [r["step"] for r in rows]
    fig, axes = plotting.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    ax.plot(steps, [r["train/loss"] for r in rows], label="train (fresh batch)", alpha=0.6)
    ax.plot(steps, [r["loss/eval"] for r in rows], label="fixed in-distribution batch")
    for name, ls in (("ridge/eval", "--"), ("dmmse/eval", ":")):
        if name in base:
            ax.axhline(base[name]["mean"], color="k", ls=ls, lw=0.8, label=f"{name.split('/')[0]} on that batch")
    ax.set(yscale="log", ylabel="MSE", title="loss")
    ax = axes[0, 1]
    ax.plot(steps, [r["dist/ridge"] for r in rows], label="to ridge")
    ax.plot(steps, [r["dist/dmmse"] for r in rows], label=f"to dMMSE (M={study.data.n_tasks})")
    ax.set(yscale="log", ylabel="mean squared distance", title="distance of predictions to the baselines")
    ax = axes[1, 0]
    ax.plot(steps, [r["loss/ood"] for r in rows], color="tab:red", label="fresh Gaussian tasks (q_∞)")
    if "ridge/ood" in base:
        ax.axhline(base["ridge/ood"]["mean"], color="k", ls="--", lw=0.8, label="ridge")
    ax.set(yscale="log", ylabel="MSE", title="out-of-distribution loss")
    ax = axes[1, 1]
    llc = [(r["step"], r["llc/mean"], r.get("llc/std") or 0.0) for r in rows if r.get("llc/mean") is not None]
    if llc:
        s, m, e = map(np.array, zip(*llc))
        ax.errorbar(s, m, yerr=e, marker="o", ms=3, capsize=2)
    else:
        ax.text(0.5, 0.5, "no LLC estimates (measures.llc_every = 0)", ha="center", transform=ax.transAxes)
    ax.set(ylabel="λ̂", title="local learning coefficient")
    for a in axes.flat:
        a.set_xlabel("step")
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.suptitle(f"{study.name}: D={study.data.x_dim}, K={study.data.n_examples}, σ²={study.data.noise_var}, "
                 f"M={study.data.n_tasks}", fontsize=10)
    fig.tight_layout()
    return [run.figures_dir / n for n in figures.save_figure(fig, run.figures_dir / "transient_ridge")]


#: the per-run values the sweep's phase picture draws against M (keys of :func:`summarise_run`,
#: so the picture's medians are aggregate.csv's ``KEY_median`` columns)
PHASE_KEYS = ("final_dist_ridge", "final_dist_dmmse", "min_loss_ood_step", "final_llc")

#: the panels of a sweep's phase diagram (aggregate.csv columns: medians and fractions over seeds)
SWEEP_MEASURES = (
    ("final_dist_ridge_median", "final distance to ridge (median)", True),
    ("final_dist_dmmse_median", "final distance to dMMSE_M (median)", True),
    ("min_loss_ood_step_median", "step of the OOD-loss minimum (median)", False),
    ("min_loss_ood_median", "OOD-loss minimum (median)", True),
    ("fraction_ridge_transient", "fraction with a transient ridge", False),
    ("final_llc_median", "final LLC (median)", False),
)


def _band(values: Sequence[float | None]) -> dict | None:
    """Median, quartiles (as aggregate.csv's ``_median`` / ``_q25`` / ``_q75``), min and max of the
    finite values; None if there are none."""
    from rnnautomata.aggregate import spread

    sp = spread(values)
    if sp is None:
        return None
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    return {**sp, "min": min(x), "max": max(x)}


def sweep_points(run_dirs: Sequence[Path]) -> dict:
    """What the sweep's phase picture draws: per run its M, seed and :data:`PHASE_KEYS` (from
    :func:`summarise_run`, as in the sweep's aggregate rows), and per M the spread over its seeds
    (:func:`_band`). M = inf is drawn at ``inf_x`` (4 × the largest finite M, 1 without one).

    Returns ``{"inf_x", "runs": [{"dir", "M", "x", "seed", KEY...}], "by_m": [{"M", "x", "n", KEY: band}]}``,
    runs and M values in increasing M (then seed).
    """
    rows = []
    for r in run_dirs:
        study, s = read_study(Path(r)), summarise_run(Path(r))
        rows.append({"dir": str(r), "M": study.data.n_tasks, "n_tasks": study.n_tasks, "seed": study.train.seed,
                     **{k: s[k] for k in PHASE_KEYS}})
    rows.sort(key=lambda row: (row["n_tasks"], row["seed"]))
    inf_x = max([row["n_tasks"] for row in rows if math.isfinite(row["n_tasks"])], default=0.25) * 4
    for row in rows:
        row["x"] = inf_x if math.isinf(row.pop("n_tasks")) else float(row["M"])
    by_m = []
    for x in sorted({row["x"] for row in rows}):
        group = [row for row in rows if row["x"] == x]
        by_m.append({"M": group[0]["M"], "x": x, "n": len(group), **{k: _band([g[k] for g in group]) for k in PHASE_KEYS}})
    return {"inf_x": inf_x, "runs": rows, "by_m": by_m}


def sweep_phase_figure(points: Mapping[str, Any]):
    """The sweep's picture of :func:`sweep_points` (a matplotlib Figure). Top: dist/ridge, dist/dmmse and loss/ood over
    training for every run, coloured by M (a dot at each run's OOD-loss minimum). Bottom, against M:
    the final distances, the step of the OOD-loss minimum and the final LLC: each seed a faint dot,
    the median over seeds a marker (joined across finite M), its quartiles a bar and min–max a thin bar."""
    from rnnautomata import plotting
    from rnnautomata.runs import RunDir

    fig, axes = plotting.subplots(2, 3, figsize=(15, 8))
    xs = [m["x"] for m in points["by_m"]]
    colour = {x: plotting.colours("viridis", [i / max(len(xs) - 1, 1)])[0] for i, x in enumerate(xs)}
    labelled = set()
    for row in points["runs"]:
        rows = [r for r in RunDir(Path(row["dir"])).read_metrics() if "dist/ridge" in r]
        st = [r["step"] for r in rows]
        lab = None if row["x"] in labelled else f"M={row['M']}"
        labelled.add(row["x"])
        c = colour[row["x"]]
        axes[0, 0].plot(st, [r["dist/ridge"] for r in rows], color=c, label=lab)
        axes[0, 1].plot(st, [r["dist/dmmse"] for r in rows], color=c, label=lab)
        ood = [r["loss/ood"] for r in rows]
        axes[0, 2].plot(st, ood, color=c, label=lab)
        axes[0, 2].plot([row["min_loss_ood_step"]], [min(ood)], "o", color=c, ms=4)
    axes[0, 0].set(yscale="log", xlabel="step", title="distance to ridge")
    axes[0, 1].set(yscale="log", xlabel="step", title="distance to dMMSE_M")
    axes[0, 2].set(yscale="log", xlabel="step", title="OOD loss (dot: its minimum)")

    def spread_panel(ax, key, label, marker, log):
        seeds = [(row["x"], row[key]) for row in points["runs"] if row[key] is not None]
        if seeds:
            ax.scatter(*zip(*seeds), s=12, alpha=0.35, marker=marker, gid=f"seeds:{key}")
        bands = [(m["x"], m[key]) for m in points["by_m"] if m[key] is not None]
        if bands:
            x = np.array([b[0] for b in bands])
            med = np.array([b[1]["median"] for b in bands])
            lo, hi = med - [b[1]["q25"] for b in bands], [b[1]["q75"] for b in bands] - med
            ax.vlines(x, [b[1]["min"] for b in bands], [b[1]["max"] for b in bands], lw=0.8, alpha=0.6)
            bars = ax.errorbar(x, med, yerr=[lo, hi], marker=marker, ls="none", capsize=3,
                               label=f"{label}: median, IQR, min–max")
            finite = x < points["inf_x"]   # the median's line stops before M = inf
            ax.plot(x[finite], med[finite], color=bars[0].get_color())
        ax.set(xscale="log", yscale="log" if log else "linear")

    ax = axes[1, 0]
    spread_panel(ax, "final_dist_ridge", "to ridge", "o", True)
    spread_panel(ax, "final_dist_dmmse", "to dMMSE_M", "s", True)
    ax.set(title="final distance of predictions", ylabel="mean squared distance")
    spread_panel(axes[1, 1], "min_loss_ood_step", "step", "o", False)
    axes[1, 1].set(title="step of the OOD-loss minimum", ylabel="step")
    spread_panel(axes[1, 2], "final_llc", "λ̂", "o", False)
    axes[1, 2].set(title="final LLC", ylabel="λ̂")
    if not any(row["final_llc"] is not None for row in points["runs"]):
        axes[1, 2].text(0.5, 0.5, "no LLC estimates (measures.llc_every = 0)", ha="center", transform=axes[1, 2].transAxes)
    for ax in axes[1]:
        ax.set_xlabel(f"M (∞ drawn at {points['inf_x']:g})")
        ax.set_xticks(xs, [str(m["M"]) for m in points["by_m"]])
        ax.minorticks_off()
    for a in axes.flat:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    n_seeds = max((m["n"] for m in points["by_m"]), default=0)
    fig.suptitle(f"transient ridge across M ({len(points['runs'])} runs, up to {n_seeds} seeds per M)", fontsize=10)
    fig.tight_layout()
    return fig


def sweep_figure(run_dirs: Sequence[Path], out_dir: Path) -> list[Path]:
    """``out_dir/transient_ridge_sweep.{png,svg}`` (:func:`sweep_phase_figure`; the paths returned)
    and ``transient_ridge_sweep.json`` (:func:`sweep_points`: what it draws)."""
    from rnnautomata.icl import figures
    from rnnautomata.runs import atomic_write_json

    out_dir = Path(out_dir)
    points = sweep_points(run_dirs)
    fig = sweep_phase_figure(points)
    names = figures.save_figure(fig, out_dir / "transient_ridge_sweep")
    atomic_write_json(out_dir / "transient_ridge_sweep.json", points)
    return [out_dir / n for n in names]


# --------------------------------------------------------------------------------- the kind
class TransientRidge(StudyKind):
    """Transient ridge: a transformer on in-context regression with M pool tasks (Carroll et al. 2025)."""

    name = "transient_ridge"
    description = "transformer on in-context linear regression with M tasks: distance to ridge / dMMSE, LLC, joint PCA"

    def load(self, raw: dict) -> TransientRidgeStudy:
        return load_transient_ridge(raw)

    def run(self, study: TransientRidgeStudy, out: Path, *, device: str | None = None, progress: bool = True,
            render: bool = True) -> dict:
        summary = run_transient_ridge(study, Path(out), device or "cpu", progress, render)
        if render:
            self.report(Path(out))
        return summary

    def track(self, run_dir: Path, *, device: str | None = None, progress: bool = True, **options) -> dict:
        return track_run(Path(run_dir), device or "cpu", llc=options.get("llc", True))

    def render(self, run_dir: Path, steps: Sequence[int] | None = None) -> list[Path]:
        return render_run(Path(run_dir))

    def report(self, run_dir: Path) -> Path:
        """report.html (:mod:`rnnautomata.measures_report`), with the baselines' own losses of baselines.json."""
        import json

        from rnnautomata.measures_report import write_measures_report

        path = Path(run_dir) / "baselines.json"
        extra = {"Baseline losses on the fixed batches (baselines.json)": json.loads(path.read_text())} if path.is_file() else {}
        return write_measures_report(Path(run_dir), self, extra=extra)

    def summarise(self, run_dir: Path) -> dict:
        return summarise_run(Path(run_dir))

    @property
    def sweep_measures(self):
        return SWEEP_MEASURES

    def sweep_figures(self, sweep_dir: Path, run_dirs: Sequence[Path]) -> list[Path]:
        out = Path(sweep_dir) / "figures"
        done = [Path(r) for r in run_dirs if (Path(r) / "summary.json").is_file()]
        if not done:
            return []
        paths = sweep_figure(done, out)
        paths += [Path(p) for p in pca_of_runs(done, out)["figure"]]
        return paths

"""The training loop: checkpoint schedule, evaluation on longer strings, resume after a kill.

A run is a pure function of its study: the model's init comes from ``torch.Generator(seed)``, the
order of each epoch from ``np.random.default_rng((seed, epoch))``, evaluation strings from their
own seeded generators. So the same study gives the same checkpoints, and a resumed run rebuilds
exactly the data order it would have seen (resumed == uninterrupted, tested).

Batches hold strings of one length; an epoch is one pass over each length in turn (shortest
first), shuffled within a length. With every binary string of length 1..10 and batch 128 that is
21 steps an epoch, as in van Rossem & Saxe (2025).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from rnnautomata.config import Study, study_from_dict, study_to_dict, study_to_toml
from rnnautomata.data import make_task
from rnnautomata.data.regular import RegularTask, all_strings
from rnnautomata.errors import CheckpointError, ConfigError
from rnnautomata.loop import (
    Progress,
    Schedule,
    diverged,
    mark_failed,
    optimizer_tensors,
    restore,
    restore_optimizer,
    run_steps,
)
from rnnautomata.models import MODELS, SequenceModel
from rnnautomata.runs import RunDir, load_checkpoint, save_checkpoint

__all__ = [
    "TrainingSet",
    "build_training_set",
    "checkpoint_steps",
    "EvalSet",
    "build_eval_set",
    "evaluate",
    "build_model",
    "load_model",
    "train",
    "resolve_device",
    "make_optimizer",
    "restore_optimizer",
    "write_checkpoint",
    "LONG_EVAL_LENGTH",
    "supervised",
    "start_output",
]

_VAL_STREAM = 1_000_003
_TEST_STREAM = 2_000_003
LONG_EVAL_LENGTH = 1000  # test lengths above this are evaluated every train.eval_every epochs only


@dataclass(frozen=True)
class TrainingSet:
    """Training strings grouped by length: ``inputs[i]`` (n_i, L_i) and ``targets[i]`` (n_i, L_i)."""

    lengths: tuple[int, ...]
    inputs: tuple[np.ndarray, ...]
    targets: tuple[np.ndarray, ...]

    @property
    def n_strings(self) -> int:
        return sum(len(x) for x in self.inputs)

    def steps_per_epoch(self, batch_size: int) -> int:
        return sum(math.ceil(len(x) / batch_size) for x in self.inputs)

    def epoch_batches(self, batch_size: int, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
        """The epoch's batches as (length index, row indices), lengths in turn, shuffled within."""
        rng = np.random.default_rng((seed, epoch))
        out = []
        for i, x in enumerate(self.inputs):
            perm = rng.permutation(len(x))
            for start in range(0, len(x), batch_size):
                out.append((i, perm[start : start + batch_size]))
        return out


def build_training_set(task: RegularTask, study: Study) -> TrainingSet:
    """Every string of each training length (``enumerate``) or a seeded sample (``sample``)."""
    cfg = study.task
    rng = np.random.default_rng((study.seed, 7))
    lengths, inputs, targets = [], [], []
    for length in range(cfg.train_min_length, cfg.train_max_length + 1):
        n_all = task.n_symbols**length
        if cfg.train_set == "enumerate":
            if n_all > 2_000_000:
                raise ConfigError(
                    f"task.train_max_length = {cfg.train_max_length} enumerates {n_all} strings of length {length}; "
                    "set task.train_set = 'sample'"
                )
            x = all_strings(task.n_symbols, length)
        else:
            x = task.sample(rng, cfg.train_samples, length)
        lengths.append(length)
        inputs.append(x)
        targets.append(task.targets(x))
    return TrainingSet(tuple(lengths), tuple(inputs), tuple(targets))


def checkpoint_steps(steps_per_epoch: int, epochs: int, every: int, n_early: int) -> list[int]:
    """Checkpoint steps: 0, every ``every`` epochs, the last step, and ``n_early`` log-spaced early ones."""
    total = steps_per_epoch * epochs
    regular = set(range(0, total + 1, steps_per_epoch * every)) | {0, total}
    first = min(steps_per_epoch * every, total)
    early = set()
    if n_early > 0 and first > 1:
        early = {int(round(s)) for s in np.geomspace(1, first, n_early + 1)[:-1]}
    return sorted(s for s in regular | early if 0 <= s <= total)


@dataclass(frozen=True)
class EvalSet:
    """Fixed evaluation strings: validation (n, val_length) and test strings per length."""

    val_inputs: np.ndarray
    val_targets: np.ndarray
    test: dict  # length -> (inputs (n, L), last-position targets (n,))


def build_eval_set(task: RegularTask, study: Study) -> EvalSet:
    cfg = study.task
    rng = np.random.default_rng((study.seed, _VAL_STREAM))
    val = task.sample(rng, cfg.val_samples, cfg.val_length)
    test = {}
    for length in cfg.test_lengths:
        trng = np.random.default_rng((study.seed, _TEST_STREAM, length))
        x = task.sample(trng, cfg.test_samples, length)
        test[length] = (x, task.targets(x)[:, -1])
    return EvalSet(val, task.targets(val), test)


def _loss(out: torch.Tensor, target: torch.Tensor, kind: str, n_outputs: int) -> torch.Tensor:
    """out (..., O) float, target (...) long -> scalar loss."""
    if kind == "mse":
        return F.mse_loss(out, F.one_hot(target, n_outputs).to(out.dtype))
    return F.cross_entropy(out.reshape(-1, n_outputs), target.reshape(-1))


def supervised(model, x: torch.Tensor, y: torch.Tensor, which: str, start_output: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets at the supervised positions.

    ``model`` follows the sequence-model contract (models/base.py).
    x, y : (B, T) symbols and per-position targets. ``which = "last"``: (B, O), (B,). ``"all"``: every
    prefix including the empty one (the output of h0 must be the start state's, ``start_output``):
    (B, T + 1, O), (B, T + 1).
    """
    if which == "last":
        return model.forward_last(x), y[:, -1]  # (B, O), (B,)
    out = model.prefix_outputs(x)  # (B, T + 1, O)
    y0 = torch.full((x.shape[0], 1), start_output, dtype=y.dtype, device=y.device)  # (B, 1)
    return out, torch.cat([y0, y], dim=1)


def start_output(task: RegularTask) -> int:
    """The task's output for the empty prefix."""
    return int(task.machine.output_of_state[task.machine.start])


@torch.no_grad()
def evaluate(
    model: SequenceModel,
    train_set: TrainingSet,
    eval_set: EvalSet,
    study: Study,
    device: torch.device,
    max_length: int | None = None,
) -> dict:
    """Train loss over the whole training set, validation loss, and last-position accuracy by length.

    Test lengths above ``max_length`` (when given) are skipped.
    """
    model.eval()
    n_out = model.n_outputs
    empty = start_output(make_task(study.task))
    total, count = 0.0, 0
    for x, y in zip(train_set.inputs, train_set.targets):
        out, tgt = supervised(model, torch.as_tensor(x, device=device), torch.as_tensor(y, device=device), study.task.target, empty)
        total += _loss(out, tgt, study.train.loss, n_out).item() * len(x)
        count += len(x)
    out, tgt = supervised(
        model,
        torch.as_tensor(eval_set.val_inputs, device=device),
        torch.as_tensor(eval_set.val_targets, device=device),
        study.task.target,
        empty,
    )
    record = {"train/loss": total / count, "val/loss": _loss(out, tgt, study.train.loss, n_out).item()}
    val_pred = model(torch.as_tensor(eval_set.val_inputs, device=device))[:, -1].argmax(-1).cpu().numpy()
    record["val/acc"] = float((val_pred == eval_set.val_targets[:, -1]).mean())
    for length, (x, y) in eval_set.test.items():
        if max_length is not None and length > max_length:
            continue
        pred = model.forward_last(torch.as_tensor(x, device=device)).argmax(-1).cpu().numpy()
        record[f"eval/acc_len{length}"] = float((pred == y).mean())
    model.train()
    return record


def build_model(study: Study, task: RegularTask, generator: torch.Generator | None = None) -> SequenceModel:
    gen = generator if generator is not None else torch.Generator().manual_seed(study.seed)
    return MODELS[study.model.arch](study.model, task.n_symbols, task.n_outputs, gen)


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, with a one-line error when the device is not available."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but torch sees no CUDA GPU; use --device cpu")
    return device


def make_optimizer(model: SequenceModel | Iterable[torch.nn.Parameter], study: Study) -> torch.optim.Optimizer:
    """``train.optimizer`` over a model's parameters (or the given parameters, e.g. many seeds stacked)."""
    params = model.parameters() if isinstance(model, torch.nn.Module) else model
    if study.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=study.train.lr)
    return torch.optim.SGD(params, lr=study.train.lr, momentum=study.train.momentum)


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict inside an automata checkpoint's tensors (the ``model/`` ones)."""
    return {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}


def write_checkpoint(run: RunDir, step: int, epoch: float, model: SequenceModel, opt, study: Study, task: RegularTask,
                     metrics: dict | None = None) -> None:
    """Save one checkpoint; ``metrics`` (its metrics.jsonl record) is kept in the metadata too, so a
    kill between the checkpoint and its metrics line loses nothing (:meth:`RunDir.restore_metrics`)."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update(optimizer_tensors(opt))
    meta = {
        "format": "rnnautomata.checkpoint/1",
        "step": str(step),
        "epoch": repr(epoch),
        "study": json.dumps(study_to_dict(study)),
        "alphabet": json.dumps(list(task.alphabet)),
        "outputs": json.dumps(list(task.outputs)),
    }
    if metrics is not None:
        meta["metrics"] = json.dumps(metrics, allow_nan=True)
    save_checkpoint(run.checkpoint_path(step), tensors, meta)


def load_model(run_dir: str | Path, step: int | str | None = "last", device: str | torch.device = "cpu") -> tuple[SequenceModel, dict]:
    """Rebuild the model of a run at a checkpoint. Returns (model in eval mode, metadata).

    The checkpoint carries its study, so the model is rebuilt from the file alone; nothing in the
    file is executed. A foreign or mismatched file raises :class:`CheckpointError`.
    """
    run = RunDir(Path(run_dir))
    run.read_manifest()
    step = run.resolve_step(step)
    path = run.checkpoint_path(step)
    tensors, meta = load_checkpoint(path)
    if meta.get("format") != "rnnautomata.checkpoint/1":
        raise CheckpointError(f"{path} is a safetensors file but not an rnnautomata checkpoint (no format tag)")
    try:
        study = study_from_dict(json.loads(meta["study"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path} carries no readable study ({err}); the file is damaged") from None
    task = make_task(study.task)
    model = build_model(study, task)
    try:
        model.load_state_dict(model_state(tensors), strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path} does not match its study's model ({first})") from None
    model.to(device).eval()
    info = {"step": int(meta["step"]), "epoch": float(meta["epoch"]), "study": study, "task": task, "path": path}
    return model, info


def _batches_from(train_set: TrainingSet, study: Study, start_step: int, steps_per_epoch: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Yield (step, epoch, length index, rows) for every step after ``start_step``."""
    epoch = start_step // steps_per_epoch
    offset = start_step % steps_per_epoch
    step = start_step
    while epoch < study.train.epochs:
        for i, rows in train_set.epoch_batches(study.train.batch_size, study.seed, epoch)[offset:]:
            step += 1
            yield step, epoch, i, rows
        offset = 0
        epoch += 1


def task_sources(study: Study) -> dict[str, str]:
    """Content hashes of the files the study's task reads (``task.path``), for the run's identity."""
    from rnnautomata.runs import file_digest

    path = study.task.path
    return {"task.path": file_digest(path)} if path and Path(path).is_file() else {}


class _Patience:
    """Early stopping on validation accuracy: stop once it has not improved for ``patience``
    regular checkpoints, or has stayed at 1.0 for that many. Checkpoints before ``first_step``
    (the early log-spaced ones) do not count."""

    def __init__(self, patience: int | None, first_step: int):
        self.patience, self.first_step = patience, first_step
        self.best, self.stale = -1.0, 0

    def update(self, record: dict) -> bool:
        """Feed one checkpoint's metrics; True when training should stop."""
        if self.patience is None or record["step"] < self.first_step:
            return False
        acc = record.get("val/acc", 0.0)
        if acc > self.best or (acc == 1.0 and self.best < 1.0):
            self.best, self.stale = acc, 0
        else:
            self.stale += 1
        return self.stale >= self.patience


def study_size(study: Study, n_symbols: int) -> dict:
    """How many training strings and probed prefixes a study enumerates (before it runs)."""
    t = study.task
    lengths = range(t.train_min_length, t.train_max_length + 1)
    strings = sum(n_symbols**L if t.train_set == "enumerate" else min(t.train_samples, n_symbols**L) for L in lengths)
    prefixes = (sum(n_symbols**d for d in range(study.probe.depth + 1)) if study.probe.mode == "enumerate"
                else study.probe.samples * study.probe.depth + 1)
    return {"train_strings": int(strings), "probe_prefixes": int(prefixes)}


#: a study whose training set or probe is larger than this gets a warning (`rnnautomata run`)
LARGE_STUDY = {"train_strings": 50_000, "probe_prefixes": 100_000}


def size_warning(study: Study, n_symbols: int) -> str | None:
    """A one-line warning when the study is large (None when it is not)."""
    size = study_size(study, n_symbols)
    if size["train_strings"] <= LARGE_STUDY["train_strings"] and size["probe_prefixes"] <= LARGE_STUDY["probe_prefixes"]:
        return None
    return (f"this study trains on {size['train_strings']:,} strings per epoch and probes {size['probe_prefixes']:,} "
            f"prefixes per checkpoint ({n_symbols} symbols); it will be slow: consider task.train_set = \"sample\" "
            f"(task.train_samples per length) or a smaller task.train_max_length / probe.depth")


def train(study: Study, out_dir: str | Path, device: str | None = None, progress: bool = True, resume: bool = True) -> dict:
    """Train the study's model, writing checkpoints and metrics into ``out_dir``.

    Parameters
    ----------
    study : the resolved study.
    out_dir : the run directory; if it already holds this study, training resumes from its last
        complete checkpoint (a different study there is an error, so nothing is overwritten).
    device : overrides ``study.train.device``.
    progress : show a progress bar.
    resume : set False to refuse an existing run directory instead of resuming.

    Returns
    -------
    dict with ``steps`` (checkpoint steps), ``final`` (last metrics) and ``resumed_from``.

    Raises
    ------
    TrainingError if the loss becomes NaN/inf (finished checkpoints are kept). CheckpointError if
    another process is training into ``out_dir``.
    """
    with RunDir(Path(out_dir)).locked():
        return _train(study, out_dir, device, progress, resume)


def _train(study: Study, out_dir: str | Path, device: str | None, progress: bool, resume: bool) -> dict:
    dev = resolve_device(device or study.train.device)
    run = RunDir(Path(out_dir))
    task = make_task(study.task)
    train_set = build_training_set(task, study)
    eval_set = build_eval_set(task, study)
    spe = train_set.steps_per_epoch(study.train.batch_size)
    schedule = checkpoint_steps(spe, study.train.epochs, study.train.checkpoint_every, study.train.early_checkpoints)
    eval_every_steps = None if study.train.eval_every is None else study.train.eval_every * spe

    model = build_model(study, task).to(dev)
    opt = make_optimizer(model, study)
    resumed_from = None
    if run.exists() and not resume:
        run.read_manifest()  # a foreign folder says so first
        raise CheckpointError(f"{run.root} already holds a run; choose another --out or delete it")
    sources = task_sources(study)
    done = run.start_or_resume("automata", study_to_toml(study), sources)
    if done:
        resumed_from = done[-1]
        restore(run, resumed_from, model, opt, dev, weights=model_state)
        run.restore_metrics(resumed_from)
    run.write_manifest(kind="automata", status="running", name=study.name, steps_per_epoch=spe, schedule=schedule,
                       sources=sources)

    empty = start_output(task)
    inputs = [torch.as_tensor(x, device=dev) for x in train_set.inputs]
    targets = [torch.as_tensor(y, device=dev) for y in train_set.targets]
    checkpoints = Schedule(schedule, done=resumed_from)
    total = checkpoints.total
    start = resumed_from or 0
    bar = Progress(total, start, progress, f"train {study.name}")
    record = None

    def save(step: int) -> dict:
        rec = {"step": step, "epoch": step / spe}
        long_eval = eval_every_steps is None or step % eval_every_steps == 0 or step == total
        rec.update(evaluate(model, train_set, eval_set, study, dev, max_length=None if long_eval else LONG_EVAL_LENGTH))
        write_checkpoint(run, step, step / spe, model, opt, study, task, metrics=rec)
        run.append_metrics(rec)
        return rec

    patience = _Patience(study.train.patience, spe * study.train.checkpoint_every)
    stopped_early = None
    for rec in run.read_metrics() if resumed_from is not None else []:  # replay: resumed == uninterrupted
        if patience.update(rec):
            stopped_early, record = rec["step"], rec  # it had stopped early: nothing to train
            break

    def at(step: int) -> bool:
        nonlocal record
        if not checkpoints.due(step):
            return False
        record = save(step)
        bar.postfix(loss=f"{record['train/loss']:.2e}", val=f"{record['val/loss']:.2e}")
        return patience.update(record)

    batches = _batches_from(train_set, study, start, spe)

    def update(state: int) -> None:
        step, epoch, i, rows = next(batches)  # step = state + 1
        idx = torch.as_tensor(rows, device=dev)
        out, tgt = supervised(model, inputs[i][idx], targets[i][idx], study.task.target, empty)
        loss = _loss(out, tgt, study.train.loss, task.n_outputs)
        if not torch.isfinite(loss):
            last = run.steps()[-1] if run.steps() else None
            mark_failed([run], f"non-finite loss at step {step}")
            raise diverged(str(loss.item()), step, detail=f" (epoch {epoch})", lr=study.train.lr, kept=last)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if study.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), study.train.grad_clip)
        opt.step()
        if step % 50 == 0:
            bar.postfix(loss=f"{loss.item():.2e}")

    if stopped_early is None:
        stopped_early = run_steps(start, total, at=at, step=update, kept=run.steps, resumed=resumed_from is not None,
                                  progress=bar)
    else:
        bar.close()
    if stopped_early is not None:
        run.write_manifest(status="complete", stopped_early_at=stopped_early)
    else:
        run.write_manifest(status="complete")
    return {"steps": run.steps(), "final": record, "resumed_from": resumed_from, "steps_per_epoch": spe,
            "stopped_early_at": stopped_early}

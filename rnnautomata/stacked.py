"""Many seeds of a non-recurrent model (a transformer) trained as one: stacked parameters, torch.func.

A study with ``seeds = [...]`` and ``model.arch = "transformer"`` trains every seed together.
:func:`torch.func.stack_module_state` turns the seeds' models into one dict of tensors with a
leading seed axis, ``{name: (n_seeds, ...)}``, and :func:`torch.func.vmap` over
:func:`torch.func.functional_call` runs the one model definition on every seed's slice at once::

    logits = vmap(functional_call)(stacked params, symbols)     # (n, B, T) -> (n, B, T + 1, O)

so each layer's matmuls become batched matmuls over seeds. As in :mod:`rnnautomata.batched` (the
recurrent version, which this module mirrors and shares its helpers with), the loss is the **sum
over seeds of each seed's mean loss**, so seed s's slice of the gradient is the gradient of its own
loss, and SGD/Adam on the stacked tensors is per-seed SGD/Adam (elementwise updates); gradient
clipping is per seed. Seed s is the run ``train.train`` makes for ``seed_study(study, s)``: its
init is ``train.build_model``'s for that seed, its batches are its own ``epoch_batches``, its
evaluation strings its own, and ``out_dir/seed_XXXX/`` is an ordinary run folder (checkpoints,
metrics, manifest) under a ``"seeds"`` manifest; :func:`rnnautomata.aggregate.aggregate_seeds`
tracks it unchanged. Equal to single-seed training within float tolerance (tests/test_stacked.py).

:func:`rnnautomata.batched.train_seeds` dispatches here for every architecture without the
one-step API (``models.base.is_recurrent``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from rnnautomata.batched import (
    _check_finite,
    _clip_per_seed,
    _common_steps,
    _epoch_rows,
    _gather_rows,
    _prepare_dirs,
    _seed_data,
    _SeedData,
    _set_stacked_optimizer_state,
    per_seed_loss,
    seed_dir,
    seed_study,
)
from rnnautomata.config import Study
from rnnautomata.loop import Progress
from rnnautomata.data import make_task
from rnnautomata.errors import ConfigError, TrainingError
from rnnautomata.models.base import SequenceModel
from rnnautomata.runs import RunDir
from rnnautomata.train import LONG_EVAL_LENGTH, build_model, checkpoint_steps, make_optimizer, resolve_device, write_checkpoint

__all__ = ["StackedModel", "evaluate_stacked", "train_stacked"]

_EVAL_BUDGET = 1 << 24  # floats of activations per evaluation chunk (n_seeds × rows × positions × width)


class _PrefixOutputs(nn.Module):
    """``model.prefix_outputs`` as a module's forward, for functional_call."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, symbols: torch.Tensor) -> torch.Tensor:
        return self.model.prefix_outputs(symbols)  # (B, T + 1, O)


class StackedModel:
    """``n_seeds`` models of one architecture and size, run as one through ``torch.func.vmap``.

    Parameters
    ----------
    models : the per-seed models (any :class:`~rnnautomata.models.base.SequenceModel` whose forward
        pass vmap can batch: no in-place updates of parameters, no data-dependent control flow);
        their parameters are copied, so slice ``s`` starts exactly as ``models[s]``.
    device : where the stacked tensors live.

    Attributes
    ----------
    params : {name: (n_seeds, ...) leaf tensor}, in ``models[0].named_parameters()`` order (the
        order ``model.parameters()`` and so a per-seed optimizer's state use).
    buffers : {name: (n_seeds, ...) tensor}.
    """

    def __init__(self, models: Sequence[SequenceModel], device: str | torch.device = "cpu") -> None:
        if not models:
            raise ValueError("StackedModel needs at least one model")
        wrapped = [_PrefixOutputs(m) for m in models]
        params, buffers = stack_module_state(wrapped)  # {"model.<name>": (n, ...)}
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.base = copy.deepcopy(wrapped[0]).to("meta")  # the definition only; no weights of its own
        self.n_seeds, self.n_outputs = len(models), models[0].n_outputs

        def one(p: dict, b: dict, symbols: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (symbols,))  # (B, T) -> (B, T + 1, O)

        self._run = vmap(one)

    def parameters(self) -> list[torch.Tensor]:
        """The stacked parameters, in the per-seed model's ``parameters()`` order."""
        return list(self.params.values())

    def seed_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Seed `index`'s state dict (detached, on CPU), with the per-seed model's names."""
        tensors = {**self.params, **self.buffers}
        return {k[len("model."):]: v[index].detach().cpu() for k, v in tensors.items()}

    def prefix_outputs(self, symbols: torch.Tensor) -> torch.Tensor:
        """Logits after every prefix, the empty one included: (n, B, T) long -> (n, B, T + 1, O)."""
        return self._run(self.params, self.buffers, symbols)


def _supervised(model: StackedModel, x: torch.Tensor, y: torch.Tensor, target: str, start_output: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """train.supervised for every seed: x, y (n, B, T) -> (n, B, O), (n, B) for "last", or
    (n, B, T + 1, O), (n, B, T + 1) for "all" (the empty prefix included)."""
    out = model.prefix_outputs(x)  # (n, B, T + 1, O)
    if target == "last":
        return out[:, :, -1], y[:, :, -1]
    y0 = torch.full((*y.shape[:2], 1), start_output, dtype=y.dtype, device=y.device)  # (n, B, 1)
    return out, torch.cat([y0, y], dim=2)


def _row_chunks(n_rows: int, n_seeds: int, length: int, width: int) -> list[slice]:
    size = max(1, _EVAL_BUDGET // max(1, n_seeds * (length + 1) * (length + 1 + width)))
    return [slice(a, min(a + size, n_rows)) for a in range(0, n_rows, size)]


@torch.no_grad()
def evaluate_stacked(model: StackedModel, data: _SeedData, study: Study, width: int, max_length: int | None = None) -> list[dict]:
    """train.evaluate for every seed at once: one metrics dict per seed (same keys and meaning).

    `width` (the model's residual width) sizes the evaluation chunks.
    """
    n, O, kind, target = model.n_seeds, model.n_outputs, study.train.loss, study.task.target

    def chunks(x: torch.Tensor) -> list[slice]:
        return _row_chunks(x.shape[1], n, x.shape[2], width)

    def loss_mean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each seed's mean loss over all rows of x, y (n or 1, N, T): (n,) float64."""
        total = torch.zeros(n, dtype=torch.float64, device=x.device)
        for sl in chunks(x):
            xc, yc = x[:, sl].expand(n, -1, -1), y[:, sl].expand(n, -1, -1)
            out, tgt = _supervised(model, xc, yc, target, data.start_output)
            total += per_seed_loss(out, tgt, kind, O).double() * xc.shape[1]  # equal elements per row
        return total / x.shape[1]

    def last_prediction(x: torch.Tensor) -> torch.Tensor:
        """(n, N, T) -> (n, N) the output class after the whole string."""
        return torch.cat([model.prefix_outputs(x[:, sl].expand(n, -1, -1))[:, :, -1].argmax(-1) for sl in chunks(x)], 1)

    train_total = torch.zeros(n, dtype=torch.float64, device=data.device)
    n_strings = 0
    for x, y in zip(data.train_inputs, data.train_targets):
        train_total += loss_mean(x, y) * x.shape[1]  # train.evaluate weights each length by its strings
        n_strings += x.shape[1]
    records = {
        "train/loss": (train_total / n_strings).tolist(),
        "val/loss": loss_mean(data.val_inputs, data.val_targets).tolist(),
        "val/acc": (last_prediction(data.val_inputs) == data.val_targets[:, :, -1]).double().mean(1).tolist(),
    }
    for length, (x, y) in data.test.items():
        if max_length is not None and length > max_length:
            continue
        records[f"eval/acc_len{length}"] = (last_prediction(x) == y).double().mean(1).tolist()
    return [{key: float(values[s]) for key, values in records.items()} for s in range(n)]


def train_stacked(study: Study, out_dir: str | Path, device: str | None = None, progress: bool = True) -> dict:
    """Train every seed of ``study.seeds`` as one stacked model, each into ``out_dir/seed_XXXX/``.

    Same parameters, return value, folder layout, resumption and errors as
    :func:`rnnautomata.batched.train_seeds` (which calls this for non-recurrent archs).
    """
    with RunDir(Path(out_dir)).locked():
        return _train_stacked(study, out_dir, device, progress)


def _train_stacked(study: Study, out_dir: str | Path, device: str | None, progress: bool) -> dict:
    if study.train.patience is not None:
        raise ConfigError("train.patience (early stopping) applies to single-seed runs; drop it or drop `seeds`, "
                          "since the seeds of one study train together for the same number of steps")
    if study.kind != "automata":
        raise ConfigError(f"seeds are supported for kind = 'automata' studies only (got {study.kind!r})")
    dev = resolve_device(device or study.train.device)
    seeds = list(study.seeds) if study.seeds is not None else [study.seed]
    top = RunDir(Path(out_dir))
    runs = [RunDir(seed_dir(out_dir, s)) for s in seeds]
    task = make_task(study.task)
    data = _seed_data(study, seeds, task, dev)
    spe = data.train_set.steps_per_epoch(study.train.batch_size)
    schedule = checkpoint_steps(spe, study.train.epochs, study.train.checkpoint_every, study.train.early_checkpoints)
    eval_every_steps = None if study.train.eval_every is None else study.train.eval_every * spe
    total = schedule[-1]

    studies = [seed_study(study, s) for s in seeds]
    models = [build_model(st, task) for st in studies]  # CPU; seed s's init, reused to write its checkpoints
    seed_opts = [make_optimizer(m, st) for m, st in zip(models, studies)]
    resumed_from = _prepare_dirs(top, runs, study, studies, models, seed_opts, spe, schedule)

    model = StackedModel(models, dev)
    width = getattr(models[0], "state_size", 1)
    params = model.parameters()
    opt = make_optimizer(params, study)
    if resumed_from is not None:
        _set_stacked_optimizer_state(opt, params, [[o.state.get(p, {}) for p in m.parameters()] for m, o in zip(models, seed_opts)])

    def save(step: int) -> list[dict]:
        long_eval = eval_every_steps is None or step % eval_every_steps == 0 or step == total
        records = evaluate_stacked(model, data, study, width, max_length=None if long_eval else LONG_EVAL_LENGTH)
        opt_state = [{key: v.detach().to("cpu") for key, v in opt.state.get(p, {}).items() if torch.is_tensor(v)} for p in params]
        for k, (run, m, o, st) in enumerate(zip(runs, models, seed_opts, studies)):
            # seed k's checkpoint through its own model and optimizer: train.write_checkpoint's format exactly
            m.load_state_dict(model.seed_state_dict(k))
            for p, state in zip(m.parameters(), opt_state):
                o.state[p] = {key: (v[k] if v.dim() > 0 else v).clone() for key, v in state.items()}  # Adam's step: shared
            rec = {"step": step, "epoch": step / spe, **records[k]}
            write_checkpoint(run, step, step / spe, m, o, st, task, metrics=rec)
            run.append_metrics(rec)
        return records

    pending = [s for s in schedule if resumed_from is None or s > resumed_from]
    start = resumed_from or 0
    bar = Progress(total, start, progress, f"{study.name} ×{len(seeds)}")
    check_every = 1 if dev.type == "cpu" else 25  # a NaN check syncs the GPU: batch it there
    flags: list[tuple[int, int, torch.Tensor]] = []
    records = None
    try:
        if pending and pending[0] == start:
            records = save(start)
            pending.pop(0)
        step = start
        for epoch in range(start // spe, study.train.epochs):
            offset = step - epoch * spe
            for i, rows in _epoch_rows(data.train_set, study.train.batch_size, seeds, epoch, dev)[offset:]:
                step += 1
                x = _gather_rows(data.train_inputs[i], rows)  # (n, B, L)
                y = _gather_rows(data.train_targets[i], rows)  # (n, B, L)
                out, tgt = _supervised(model, x, y, study.task.target, data.start_output)
                losses = per_seed_loss(out, tgt, study.train.loss, model.n_outputs)  # (n,)
                flags.append((step, epoch, ~torch.isfinite(losses.detach())))
                if len(flags) >= check_every or (pending and step == pending[0]):
                    _check_finite(flags, seeds, runs, top, study)
                    flags = []
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()  # sum over seeds: each slice gets its own seed's gradient
                if study.train.grad_clip is not None:
                    _clip_per_seed(params, study.train.grad_clip)
                opt.step()
                if bar is not None:
                    bar.update(1)
                if pending and step == pending[0]:
                    records = save(step)
                    pending.pop(0)
        _check_finite(flags, seeds, runs, top, study)
    except KeyboardInterrupt:
        done = _common_steps(runs)
        raise TrainingError(
            f"interrupted; checkpoints up to step {done[-1] if done else None} are kept for every seed: "
            "rerun the same command to resume"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    for run in runs:
        run.write_manifest(status="complete")
    top.write_manifest(status="complete")
    return {
        "seeds": seeds,
        "seed_dirs": [str(r.root) for r in runs],
        "steps": _common_steps(runs),
        "final": records,
        "resumed_from": resumed_from,
        "steps_per_epoch": spe,
    }

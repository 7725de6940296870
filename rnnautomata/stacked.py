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

from rnnautomata.batched import SeedStack, _SeedData, per_seed_loss, train_stack
from rnnautomata.config import Study
from rnnautomata.models.base import SequenceModel
from rnnautomata.runs import RunDir

__all__ = ["StackedModel", "evaluate_stacked", "transformer_stack", "train_stacked"]

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
    n, O, kind, target = model.n_seeds, model.n_outputs, study.train.loss, study.task.target  # noqa: E741 (O: outputs, the shape letter)

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


def transformer_stack(models: Sequence[SequenceModel], device: torch.device) -> SeedStack:
    """The non-recurrent family's :class:`~rnnautomata.batched.SeedStack`: a :class:`StackedModel`."""
    model = StackedModel(models, device)
    width = getattr(models[0], "state_size", 1)  # sizes the evaluation chunks
    return SeedStack(model, model.parameters(),
                     lambda x, y, target, start: _supervised(model, x, y, target, start),
                     lambda data, study, max_length: evaluate_stacked(model, data, study, width, max_length=max_length),
                     lambda: [model.seed_state_dict(k) for k in range(model.n_seeds)])


def train_stacked(study: Study, out_dir: str | Path, device: str | None = None, progress: bool = True) -> dict:
    """Train every seed of ``study.seeds`` as one stacked model, each into ``out_dir/seed_XXXX/``.

    Same parameters, return value, folder layout, resumption and errors as
    :func:`rnnautomata.batched.train_seeds`: the same loop (:func:`rnnautomata.batched.train_stack`)
    over a :class:`StackedModel`.
    """
    with RunDir(Path(out_dir)).locked():
        return train_stack(study, out_dir, device, progress, transformer_stack)

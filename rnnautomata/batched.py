"""Many seeds in one training run: stacked per-seed parameters and batched matmuls over seeds.

A study with ``seeds = [0, 1, ..., 1023]`` trains every seed's recurrent model together. Each
parameter of :class:`~rnnautomata.models.RecurrentModel` becomes one tensor with a leading seed
axis, ``(n_seeds, ...)``, and the recurrence runs all seeds at once with ``torch.baddbmm``::

    h = relu(x_proj[:, :, t] + b_hh + h @ W_hh^T)      # (n_seeds, B, H), one bmm for all seeds

The loss is the **sum over seeds of each seed's mean loss**, so the gradient of seed s's slice is
exactly the gradient of seed s's own loss, and SGD (with momentum) or Adam on the stacked tensors
is exactly per-seed SGD/Adam (every update is elementwise). Gradient clipping is done per seed.

Each seed is the run ``train.train`` would make for ``dataclasses.replace(study, seed=s)``:

- init: seed s's slice is copied from ``train.build_model(study with seed=s, task)``;
- data order: the rows of ``TrainingSet.epoch_batches(batch_size, s, epoch)``. Lengths come in
  the same order for every seed, so every step gathers a ``(n_seeds, B, T)`` batch of one length,
  different rows per seed;
- evaluation strings: each seed's own (``train.build_eval_set``), evaluated batched over seeds;
- output: ``out_dir/seed_XXXX/`` is an ordinary run directory (``study.toml`` with ``seed = s``,
  checkpoints with the tensor names and metadata of ``train``, ``metrics.jsonl``, manifest), so
  ``train.load_model`` and ``dynamics.track`` work on it unchanged. ``out_dir/manifest.json`` has
  kind ``"seeds"`` and lists the seed folders; ``out_dir/study.toml`` holds the whole study.

The trajectories agree with single-seed training to float tolerance, not bit for bit: a batched
matmul sums in a different order from torch's fused RNN kernels (tests/test_batched.py).

Speed: Elman trains through one autograd node with hand-written backpropagation through time
(:class:`_ElmanThroughTime`); on the CPU its time loops take 8 seeds at a time (cache), and
inference runs seed by seed through torch's own recurrent kernels; on a GPU every loop takes all
seeds at once. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rnnautomata.config import Study, study_to_toml
from rnnautomata.data import make_task
from rnnautomata.errors import CheckpointError, ConfigError
from rnnautomata.loop import Progress, Schedule, diverged, mark_failed, restore, run_steps
from rnnautomata.models import RecurrentModel
from rnnautomata.models.rnn import ARCHS as RECURRENT_ARCHS
from rnnautomata.models.rnn import TIME_CHUNK
from rnnautomata.runs import RunDir, atomic_write_text
from rnnautomata.train import (
    LONG_EVAL_LENGTH,
    EvalSet,
    TrainingSet,
    build_eval_set,
    build_model,
    build_training_set,
    checkpoint_steps,
    make_optimizer,
    model_state,
    resolve_device,
    start_output,
    task_sources,
    write_checkpoint,
)

__all__ = ["BatchedRecurrent", "per_seed_loss", "evaluate_seeds", "seed_dir", "seed_study", "train_seeds", "SEEDS_KIND"]

SEEDS_KIND = "seeds"
_EVAL_BUDGET = 1 << 22  # floats of hidden state per evaluation chunk (n_seeds × rows × S)
_PRECOMPUTE_BUDGET = 1 << 24  # floats of input projection precomputed for a whole batch
_FUSED_CPU_INFERENCE = True  # CPU inference through torch's recurrent kernels (False: the batched loop, as on a GPU)
_FUSED_CPU_MAX_SEEDS = 3  # above this, Elman's last-output inference on the CPU takes all seeds per step
_PER_SEED_LOOPS = {"cpu"}  # device types whose training time loops run seed by seed (cache); others: all seeds per step


def _baddbmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """bias + a @ b for (n, B, K) @ (n, K, G). One seed goes through addmm, torch.nn.RNN's own
    CPU path: ATen's small batched matmul splits the seed axis over threads, which costs more than
    it saves for one seed (and a great deal on a loaded CPU)."""
    if a.shape[0] == 1:
        return torch.addmm(bias[0], a[0], b[0]).unsqueeze(0)  # (1, B, G)
    return torch.baddbmm(bias, a, b)  # (n, B, G)


class _ElmanThroughTime(torch.autograd.Function):
    """The whole Elman recurrence as one autograd node, with hand-written backpropagation through time.

    Forward: ``h_t = act(table[x_t] + h_{t-1} @ W)`` for t = 1..T, where ``table[a]`` is column a
    of W_ih plus both biases (a one-hot input times W_ih is a row lookup) and every string starts
    from its seed's one state ``h0``. Autograd through torch.nn.RNN records ~3 nodes a step and
    computes ``dW`` with one small matmul a step; here:

    - the input projection is a row gather written straight into the state buffer; its gradient
      is an index-add of d(pre-activation) rows on the CPU (a one-hot matmul's backward there is a
      slow, degenerate (H × T·B) @ (T·B × A) product) and a one-hot product per step on a GPU
      (deterministic, unlike CUDA's atomic index-add);
    - step 1 costs one vector-matrix product, ``h0 @ W``, shared by every row of the batch, and so
      does its share of ``dW`` (an outer product) and ``dh0`` (torch.nn.RNN multiplies a (B, H)
      block of copies of h0 there);
    - the backward pass runs only the ``dh`` recurrence step by step and gets the rest of ``dW``
      with one matmul over ``(T-1)·B`` rows;
    - on the CPU (``_PER_SEED_LOOPS``) each seed runs its whole forward, and its whole backward
      with ``dW``, before the next seed, so its states stay in cache (states stored seed-major,
      ``(n, T, B, H)``, and one seed's d(pre-activation) workspace reused); on a GPU every step
      takes all seeds at once (states stored time-major).

    Figures against torch.nn.RNN: docs/benchmarks.md.
    """

    @staticmethod
    def forward(ctx, table, symbols, h0, w_t, relu: bool, last_only: bool):
        # table (n, A, H), symbols (n, B, T) long, h0 (n, H), w_t (n, H, H) -> states after every
        # symbol (n, T, B, H), or after the last one only (n, B, H)
        n, A, H = table.shape
        B, T = symbols.shape[1:]
        per_seed = table.device.type in _PER_SEED_LOOPS
        order = (0, 2, 1) if per_seed else (2, 0, 1)  # the buffer's layout: (n, T, B) or (T, n, B)
        offsets = torch.arange(n, device=symbols.device).view(n, 1, 1) * A  # seed s's rows of table
        rows = (symbols + offsets).permute(*order).reshape(-1)  # (n·T·B,) in buffer order
        buf = torch.index_select(table.reshape(n * A, H), 0, rows).view(*(symbols.shape[i] for i in order), H)
        hs = buf if per_seed else buf.transpose(0, 1)  # (n, T, B, H): hs[:, t] = state after t+1 symbols
        act = torch.relu_ if relu else torch.tanh_
        first = torch.bmm(h0.unsqueeze(1), w_t)  # (n, 1, H): h0 @ W, the same for every row
        if per_seed:
            for s in range(n):
                h_views, w = hs[s].unbind(0), w_t[s]  # T × (B, H) views made once, (H, H)
                act(h_views[0].add_(first[s]))
                for t in range(1, T):
                    act(h_views[t].addmm_(h_views[t - 1], w))  # in place: no temporaries
        else:
            h_views = buf.unbind(0)  # T × (n, B, H)
            act(h_views[0].add_(first))
            for t in range(1, T):
                act(h_views[t].baddbmm_(h_views[t - 1], w_t))
        ctx.save_for_backward(buf, rows, symbols, h0, w_t)
        ctx.relu, ctx.last_only, ctx.per_seed, ctx.n_symbols = relu, last_only, per_seed, A
        return hs[:, -1] if last_only else hs

    @staticmethod
    def backward(ctx, grad):
        # grad (n, B, H) if last_only else (n, T, B, H)
        buf, rows, symbols, h0, w_t = ctx.saved_tensors
        per_seed, last_only, A = ctx.per_seed, ctx.last_only, ctx.n_symbols
        hs = buf if per_seed else buf.transpose(0, 1)  # (n, T, B, H)
        n, T, B, H = hs.shape
        dtable = torch.zeros((n * A, H), dtype=buf.dtype, device=buf.device)
        dw = torch.empty_like(w_t)  # (n, H, H)
        want_h0 = ctx.needs_input_grad[2]
        dh0 = torch.empty_like(h0) if want_h0 else None  # (n, H)

        def act_backward(dh: torch.Tensor, h: torch.Tensor, out: torch.Tensor) -> None:
            # relu's and tanh's own backward kernels, from the output h_t
            if ctx.relu:
                torch.ops.aten.threshold_backward.grad_input(dh, h, 0, grad_input=out)
            else:
                torch.ops.aten.tanh_backward.grad_input(dh, h, grad_input=out)

        if per_seed:
            dpre = _workspace((T, B, H), buf.dtype, buf.device)  # one seed's d loss / d pre-activation
            d_views = dpre.unbind(0)  # T × (B, H)
            for s in range(n):
                h_views, w_back = hs[s].unbind(0), w_t[s].t()  # T × (B, H), (H, H)
                g = grad[s]  # (B, H) or (T, B, H)
                dh = (g if last_only else g[T - 1]).clone()  # (B, H)
                for t in range(T - 1, -1, -1):
                    if t < T - 1 and not last_only:
                        dh += g[t]
                    act_backward(dh, h_views[t], d_views[t])
                    if t > 0:
                        torch.mm(d_views[t], w_back, out=dh)  # (B, H): d loss / d h_t
                # the rest while this seed's states are still in cache
                d_first = d_views[0].sum(0)  # (H,): every row's share of h0 @ W
                prev, cur = hs[s, : T - 1].reshape(-1, H), dpre[1:].reshape(-1, H)  # ((T-1)·B, H)
                torch.addmm(torch.outer(h0[s], d_first), prev.t(), cur, out=dw[s])
                dtable.index_add_(0, rows[s * T * B : (s + 1) * T * B], dpre.view(-1, H))
                if want_h0:
                    torch.mv(w_t[s], d_first, out=dh0[s])
        else:
            dpre_buf = torch.empty_like(buf)  # (T, n, B, H)
            d_views, h_views = dpre_buf.unbind(0), buf.unbind(0)  # T × (n, B, H)
            w_back = w_t.transpose(1, 2).contiguous()  # (n, H, H)
            # the table's gradient as one-hot products, step by step: deterministic on a GPU,
            # where index_add_ adds atomically in no fixed order
            onehot_t = F.one_hot(symbols, A).to(buf.dtype).permute(2, 0, 3, 1)  # (T, n, A, B)
            dtable_seeds = dtable.view(n, A, H)
            dh = (grad if last_only else grad[:, T - 1]).clone()  # (n, B, H)
            for t in range(T - 1, -1, -1):
                if t < T - 1 and not last_only:
                    dh += grad[:, t]
                act_backward(dh, h_views[t], d_views[t])
                dtable_seeds.baddbmm_(onehot_t[t], d_views[t])  # (n, A, H)
                if t > 0:
                    torch.bmm(d_views[t], w_back, out=dh)
            d_first = d_views[0].sum(1)  # (n, H)
            prev = hs[:, : T - 1].reshape(n, -1, H)  # (n, (T-1)·B, H)
            cur = dpre_buf.transpose(0, 1)[:, 1:].reshape(n, -1, H)
            torch.baddbmm(h0.unsqueeze(2) * d_first.unsqueeze(1), prev.transpose(1, 2), cur, out=dw)
            if want_h0:
                dh0 = torch.bmm(w_t, d_first.unsqueeze(2)).squeeze(2)  # (n, H)
        return dtable.view(n, A, H), None, dh0, dw, None, None


_WORKSPACES = threading.local()


def _workspace(shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A scratch tensor reused from one backward pass to the next (per thread). A fresh one costs
    a page fault per 4 KiB on first touch, which on a virtual machine is a good part of a small
    model's step."""
    cache = getattr(_WORKSPACES, "tensors", None)
    if cache is None:
        cache = _WORKSPACES.tensors = {}
    key = (tuple(shape), dtype, str(device))
    if key not in cache:
        if len(cache) >= 8:  # a few shapes (one per string length) at a time
            cache.clear()
        cache[key] = torch.empty(shape, dtype=dtype, device=device)
    return cache[key]


def seed_dir(out_dir: str | Path, seed: int) -> Path:
    """The run directory of one seed: ``out_dir/seed_0007``."""
    return Path(out_dir) / f"seed_{seed:04d}"


def seed_study(study: Study, seed: int) -> Study:
    """The single-seed study that seed ``seed`` of a multi-seed study is equivalent to."""
    return dataclasses.replace(study, seed=seed, seeds=None)


class BatchedRecurrent(nn.Module):
    """``n_seeds`` :class:`RecurrentModel` s of one architecture, stacked along a leading seed axis.

    Parameters
    ----------
    models : the per-seed models (same arch, sizes and initial-state setting); their parameters
        are copied, so slice ``s`` starts exactly as ``models[s]``.

    Shapes: symbols ``(n_seeds, B, T)`` long; states ``(n_seeds, B, S)`` with ``S = H`` (Elman,
    GRU) or ``2H`` (LSTM, ``[h, c]``); outputs ``(n_seeds, B, O)``.
    """

    def __init__(self, models: Sequence[RecurrentModel]) -> None:
        super().__init__()
        if not models:
            raise ValueError("BatchedRecurrent needs at least one model")
        first = models[0]
        if getattr(first, "arch", None) not in _CELLS:
            raise ValueError(f"BatchedRecurrent stacks recurrent models ({', '.join(_CELLS)}); got {type(first).__name__}")
        self.n_seeds = len(models)
        self.arch = first.arch
        self.n_symbols, self.n_outputs = first.n_symbols, first.n_outputs
        self.hidden_size, self.state_size = first.hidden_size, first.state_size
        self.nonlinearity = getattr(first.cell, "nonlinearity", "tanh")
        #: RecurrentModel state-dict names, parameters first in ``parameters()`` order
        self.param_names = [name for name, _ in first.named_parameters()]
        self.buffer_names = [name for name, _ in first.named_buffers()]
        states = [m.state_dict() for m in models]
        for name in self.param_names + self.buffer_names:
            stacked = torch.stack([sd[name].detach() for sd in states]).clone()  # (n_seeds, ...)
            if name in self.param_names:
                self.register_parameter(self._attr(name), nn.Parameter(stacked))
            else:
                self.register_buffer(self._attr(name), stacked)

    @staticmethod
    def _attr(name: str) -> str:
        return name.replace(".", "__")

    def tensor(self, name: str) -> torch.Tensor:
        """The stacked tensor for a RecurrentModel state-dict name, e.g. ``cell.weight_hh_l0``."""
        return getattr(self, self._attr(name))

    def ordered_parameters(self) -> list[nn.Parameter]:
        """Stacked parameters in the order of ``RecurrentModel.parameters()`` (optimizer indices)."""
        return [self.tensor(name) for name in self.param_names]

    # --- per-seed state dicts -----------------------------------------------------------------
    def seed_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Seed ``index``'s slice under RecurrentModel's state-dict names (CPU copies)."""
        return {name: self.tensor(name)[index].detach().to("cpu").clone() for name in self.param_names + self.buffer_names}

    # --- the recurrence -------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> torch.Tensor:
        """h0 of every seed repeated over the batch: (n_seeds, B, S)."""
        return self.tensor("h0").unsqueeze(1).expand(-1, batch_size, -1)  # (n, B, S)

    def _input_projection(self, symbols: torch.Tensor, seed_axis: int = 0) -> torch.Tensor:
        """W_ih x + b_ih for one-hot x: a gather of W_ih's columns. symbols (..., n, ...) -> (..., G).

        ``seed_axis`` is the axis of ``symbols`` that runs over seeds.
        """
        w_ih_t = self.tensor("cell.weight_ih_l0").transpose(1, 2)  # (n, A, G)
        shape = [1] * symbols.dim()
        shape[seed_axis] = self.n_seeds
        seeds = torch.arange(self.n_seeds, device=symbols.device).view(shape)
        b_ih = self.tensor("cell.bias_ih_l0").view(*shape, -1)
        return w_ih_t[seeds, symbols] + b_ih  # (..., G)

    def _input_table(self) -> torch.Tensor:
        """Elman's pre-activation contribution of each input symbol, both biases included:
        (n, A, H). A one-hot input times W_ih is a column of W_ih, so the input projection of a
        string is a row gather from this table."""
        return self.tensor("cell.weight_ih_l0").transpose(1, 2) + (
            self.tensor("cell.bias_ih_l0") + self.tensor("cell.bias_hh_l0")).unsqueeze(1)

    def _cell(self, x_proj: torch.Tensor, state: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        """One step for every seed: x_proj (n, B, G), state (n, B, S) -> (n, B, S)."""
        return _CELLS[self.arch](self, x_proj, state, w_hh_t, b_hh)

    def _elman(self, x_proj: torch.Tensor, state: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        pre = _baddbmm(x_proj + b_hh, state, w_hh_t)  # (n, B, H)
        return torch.relu(pre) if self.nonlinearity == "relu" else torch.tanh(pre)

    def _gru(self, x_proj: torch.Tensor, state: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        H = self.hidden_size
        h_proj = _baddbmm(b_hh.expand(-1, state.shape[1], -1), state, w_hh_t)  # (n, B, 3H)
        r = torch.sigmoid(x_proj[..., :H] + h_proj[..., :H])  # (n, B, H)
        z = torch.sigmoid(x_proj[..., H : 2 * H] + h_proj[..., H : 2 * H])  # (n, B, H)
        cand = torch.tanh(x_proj[..., 2 * H :] + r * h_proj[..., 2 * H :])  # (n, B, H)
        return cand + z * (state - cand)  # (1 - z) * cand + z * h

    def _lstm(self, x_proj: torch.Tensor, state: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        H = self.hidden_size
        h, c = state[..., :H], state[..., H:]  # (n, B, H) each
        gates = _baddbmm(x_proj + b_hh, h, w_hh_t)  # (n, B, 4H): i, f, g, o
        i, f = torch.sigmoid(gates[..., :H]), torch.sigmoid(gates[..., H : 2 * H])
        g, o = torch.tanh(gates[..., 2 * H : 3 * H]), torch.sigmoid(gates[..., 3 * H :])
        c = f * c + i * g  # (n, B, H)
        return torch.cat([o * torch.tanh(c), c], dim=-1)  # (n, B, 2H)

    def _recurrent_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        # contiguous: a batched matmul against a transposed view can take a much slower CPU path
        w_hh_t = self.tensor("cell.weight_hh_l0").transpose(1, 2).contiguous()  # (n, H, G)
        b_hh = self.tensor("cell.bias_hh_l0").unsqueeze(1)  # (n, 1, G)
        return w_hh_t, b_hh

    def step(self, state: torch.Tensor, symbols: torch.Tensor) -> torch.Tensor:
        """Advance every state by one symbol: (n, B, S), (n, B) long -> (n, B, S)."""
        w_hh_t, b_hh = self._recurrent_weights()
        return self._cell(self._input_projection(symbols), state, w_hh_t, b_hh)

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        """Outputs of states: (n, B, S) -> (n, B, O)."""
        w = self.tensor("readout_layer.weight").transpose(1, 2).contiguous()  # (n, H, O)
        b = self.tensor("readout_layer.bias").unsqueeze(1)  # (n, 1, O)
        return _baddbmm(b.expand(-1, state.shape[1], -1), state[..., : self.hidden_size], w)  # (n, B, O)

    def run(self, symbols: torch.Tensor, every_position: bool = True) -> torch.Tensor:
        """Outputs after every symbol (n, B, T, O), or after the last one only (n, B, O).

        Under autograd, Elman runs as one node with hand-written backpropagation through time
        (:class:`_ElmanThroughTime`). Otherwise only the current state is kept between steps, so
        evaluation on strings of length 10,000 costs memory for one step, not the whole string.
        """
        n, B, T = symbols.shape
        if self.arch == "elman" and torch.is_grad_enabled():
            table = self._input_table()  # (n, A, H)
            relu = self.nonlinearity == "relu"
            w_t = self.tensor("cell.weight_hh_l0").transpose(1, 2)  # (n, H, H) view: matmuls take it transposed
            hs = _ElmanThroughTime.apply(table, symbols, self.tensor("h0"), w_t, relu, not every_position)
            if every_position:  # hs (n, T, B, H)
                return self.readout(hs.reshape(n, T * B, -1)).view(n, T, B, -1).transpose(1, 2)  # (n, B, T, O)
            return self.readout(hs)  # hs (n, B, H) -> (n, B, O)
        w_hh_t, b_hh = self._recurrent_weights()
        G = w_hh_t.shape[-1]
        if not torch.is_grad_enabled():
            on_cpu = _FUSED_CPU_INFERENCE and symbols.device.type == "cpu"
            if on_cpu and (n <= _FUSED_CPU_MAX_SEEDS or self.arch != "elman" or every_position):
                return self._run_fused(symbols, every_position)
            if self.arch == "elman" and not every_position:
                return self._last_elman(symbols)  # many seeds on the CPU; a GPU
        precompute = n * B * T * G <= _PRECOMPUTE_BUDGET
        x_proj = self._input_projection(symbols) if precompute else None  # (n, B, T, G)
        state = self.initial_state(B)  # (n, B, S)
        outs = []
        for t in range(T):
            xp = x_proj[:, :, t] if precompute else self._input_projection(symbols[:, :, t])  # (n, B, G)
            state = self._cell(xp, state, w_hh_t, b_hh)  # (n, B, S)
            if every_position:
                outs.append(self.readout(state))  # (n, B, O)
        if every_position:
            return torch.stack(outs, dim=2)  # (n, B, T, O)
        return self.readout(state)  # (n, B, O)

    def _last_elman(self, symbols: torch.Tensor) -> torch.Tensor:
        """Elman's output after the last symbol, all seeds per step, three ops a step: a row
        gather of each symbol's input projection, one batched matmul, the nonlinearity in place.
        On the CPU, from 4 seeds on, this beats running torch's kernel seed by seed (at 16
        seeds × 32 strings × 10,000 symbols, H = 100: docs/benchmarks.md); on a GPU it launches
        half the kernels of the general step loop. (n, B, T) -> (n, B, O)."""
        n, B, T = symbols.shape
        A = self.n_symbols
        table = self._input_table().reshape(n * A, -1)  # (n·A, H)
        offsets = torch.arange(n, device=symbols.device).view(n, 1) * A  # (n, 1)
        w_t = self.tensor("cell.weight_hh_l0").transpose(1, 2)  # (n, H, H)
        act = torch.relu_ if self.nonlinearity == "relu" else torch.tanh_
        h = self.initial_state(B).contiguous()  # (n, B, H)
        for start in range(0, T, TIME_CHUNK):
            rows = (symbols[:, :, start : start + TIME_CHUNK] + offsets.unsqueeze(2)).permute(2, 0, 1)  # (C, n, B)
            for r in rows.reshape(rows.shape[0], -1).unbind(0):  # (n·B,) rows of table
                h = act(torch.baddbmm(table.index_select(0, r).view(n, B, -1), h, w_t))  # (n, B, H)
        return self.readout(h)  # (n, B, O)

    def _run_fused(self, symbols: torch.Tensor, every_position: bool) -> torch.Tensor:
        """Inference on the CPU: seed by seed through torch's own recurrent kernels.

        The time loop then runs in C++ (what nn.RNN/GRU/LSTM call), not in Python: on the CPU a
        batched matmul over seeds gains nothing, while a Python loop over 10,000 steps costs more
        than the arithmetic. Same (n, B, T) -> (n, B, T, O) or (n, B, O) contract as ``run``.
        """
        n, B, T = symbols.shape
        H = self.hidden_size
        kernel = {"elman": torch.rnn_relu if self.nonlinearity == "relu" else torch.rnn_tanh,
                  "gru": torch.gru, "lstm": torch.lstm}[self.arch]
        names = ("cell.weight_ih_l0", "cell.weight_hh_l0", "cell.bias_ih_l0", "cell.bias_hh_l0")
        h0 = self.tensor("h0")  # (n, S)
        outs = []
        # last output only: TIME_CHUNK symbols per kernel call (never the whole (B, T, H) output)
        chunk = T if every_position else TIME_CHUNK
        for k in range(n):
            params = [self.tensor(name)[k] for name in names]
            hx = h0[k, :H].expand(1, B, H).contiguous()  # (1, B, H)
            if self.arch == "lstm":
                hx = (hx, h0[k, H:].expand(1, B, H).contiguous())
            for start in range(0, T, chunk):
                x = F.one_hot(symbols[k, :, start : start + chunk], self.n_symbols).to(h0.dtype)  # (B, ≤C, A)
                if self.arch == "lstm":
                    hs, h_last, c_last = kernel(x, hx, params, True, 1, 0.0, False, False, True)
                    hx = (h_last, c_last)
                else:
                    hs, hx = kernel(x, hx, params, True, 1, 0.0, False, False, True)  # (B, C, H), (1, B, H)
                    h_last = hx
            w, b = self.tensor("readout_layer.weight")[k], self.tensor("readout_layer.bias")[k]
            outs.append(F.linear(hs if every_position else h_last[0], w, b))  # (B, T, O) or (B, O)
        return torch.stack(outs)  # (n, B, T, O) or (n, B, O)

    def forward(self, symbols: torch.Tensor) -> torch.Tensor:
        """Outputs after every symbol: (n, B, T) long -> (n, B, T, O)."""
        return self.run(symbols, every_position=True)

    def forward_last(self, symbols: torch.Tensor) -> torch.Tensor:
        """Output after the last symbol only: (n, B, T) -> (n, B, O)."""
        return self.run(symbols, every_position=False)


# --- losses and evaluation, per seed ------------------------------------------------------------
#: recurrent arch -> the batched step of its cell (the archs of rnnautomata.models.RECURRENT_CELLS)
_CELLS = {"elman": BatchedRecurrent._elman, "gru": BatchedRecurrent._gru, "lstm": BatchedRecurrent._lstm}


def per_seed_loss(out: torch.Tensor, target: torch.Tensor, kind: str, n_outputs: int) -> torch.Tensor:
    """Each seed's mean loss: out (n, ..., O), target (n, ...) long -> (n,).

    The mean is train._loss's: MSE over every (position, output) element on one-hot targets,
    cross-entropy over every position.
    """
    n = out.shape[0]
    if kind == "mse":
        elem = F.mse_loss(out, F.one_hot(target, n_outputs).to(out.dtype), reduction="none")  # (n, ..., O)
    else:
        elem = F.cross_entropy(out.reshape(-1, n_outputs), target.reshape(-1), reduction="none")  # (n * ...)
    return elem.reshape(n, -1).mean(1)


def _run_supervised(
    model: BatchedRecurrent, x: torch.Tensor, y: torch.Tensor, target: str, start_output: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """train.supervised for every seed: x, y (n, B, T) -> (n, B, O), (n, B) for "last", or
    (n, B, T + 1, O), (n, B, T + 1) for "all" (the empty prefix included)."""
    if target == "last":
        return model.forward_last(x), y[:, :, -1]
    n, B = x.shape[0], x.shape[1]
    out0 = model.readout(model.initial_state(B)).unsqueeze(2)  # (n, B, 1, O)
    y0 = torch.full((n, B, 1), start_output, dtype=y.dtype, device=y.device)  # (n, B, 1)
    return torch.cat([out0, model.forward(x)], dim=2), torch.cat([y0, y], dim=2)


def _gather_rows(data: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of per-seed data: data (n or 1, N, L), rows (n, B) -> (n, B, L)."""
    if data.shape[0] == 1:
        return data[0][rows]
    seeds = torch.arange(rows.shape[0], device=rows.device).unsqueeze(1)  # (n, 1)
    return data[seeds, rows]


def _chunks(n_rows: int, n_seeds: int, state_size: int) -> list[slice]:
    size = max(1, _EVAL_BUDGET // max(1, n_seeds * state_size))
    return [slice(a, min(a + size, n_rows)) for a in range(0, n_rows, size)]


@torch.no_grad()
def evaluate_seeds(model: BatchedRecurrent, data: "_SeedData", study: Study, max_length: int | None = None) -> list[dict]:
    """train.evaluate for every seed at once: one metrics dict per seed (same keys and meaning)."""
    model.eval()
    n, O, kind, target = model.n_seeds, model.n_outputs, study.train.loss, study.task.target  # noqa: E741 (O: outputs, the shape letter)
    S = model.state_size

    def loss_mean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each seed's mean loss over all rows of x, y (n or 1, N, T), in chunks: (n,) float64."""
        total = torch.zeros(n, dtype=torch.float64, device=x.device)
        for sl in _chunks(x.shape[1], n, S):
            xc, yc = x[:, sl].expand(n, -1, -1), y[:, sl].expand(n, -1, -1)
            out, tgt = _run_supervised(model, xc, yc, target, data.start_output)
            total += per_seed_loss(out, tgt, kind, O).double() * xc.shape[1]  # equal elements per row
        return total / x.shape[1]

    train_total = torch.zeros(n, dtype=torch.float64, device=data.device)
    n_strings = 0
    for x, y in zip(data.train_inputs, data.train_targets):
        # train.evaluate weights each length's mean loss by its number of strings
        train_total += loss_mean(x, y) * x.shape[1]
        n_strings += x.shape[1]
    val_loss = loss_mean(data.val_inputs, data.val_targets)
    val_pred = torch.cat([model.forward_last(data.val_inputs[:, sl]).argmax(-1) for sl in _chunks(data.val_inputs.shape[1], n, S)], 1)
    val_acc = (val_pred == data.val_targets[:, :, -1]).double().mean(1)  # (n,)
    records = {
        "train/loss": (train_total / n_strings).tolist(),
        "val/loss": val_loss.tolist(),
        "val/acc": val_acc.tolist(),
    }
    for length, (x, y) in data.test.items():
        if max_length is not None and length > max_length:
            continue
        pred = torch.cat([model.forward_last(x[:, sl]).argmax(-1) for sl in _chunks(x.shape[1], n, S)], 1)  # (n, N)
        records[f"eval/acc_len{length}"] = (pred == y).double().mean(1).tolist()
    model.train()
    return [{key: float(values[s]) for key, values in records.items()} for s in range(n)]


# --- the training data of every seed -------------------------------------------------------------
@dataclasses.dataclass
class _SeedData:
    """Training and evaluation strings of every seed, stacked: leading axis n_seeds (or 1 if shared)."""

    train_set: TrainingSet  # seed 0's (lengths and sizes are the same for every seed)
    train_inputs: list[torch.Tensor]  # per length: (n or 1, N_i, L_i) long
    train_targets: list[torch.Tensor]
    val_inputs: torch.Tensor  # (n, V, val_length)
    val_targets: torch.Tensor
    test: dict  # length -> (inputs (n, N, L), last targets (n, N))
    device: torch.device
    start_output: int = 0  # the task's output for the empty prefix (train.start_output)


def _seed_data(study: Study, seeds: Sequence[int], task, device: torch.device) -> _SeedData:
    sets = [build_training_set(task, seed_study(study, s)) for s in seeds]
    shared = study.task.train_set == "enumerate"  # every seed sees every string: store them once
    used = sets[:1] if shared else sets

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.stack(arrays), device=device)

    train_inputs = [stack([ts.inputs[i] for ts in used]) for i in range(len(sets[0].inputs))]
    train_targets = [stack([ts.targets[i] for ts in used]) for i in range(len(sets[0].inputs))]
    evals: list[EvalSet] = [build_eval_set(task, seed_study(study, s)) for s in seeds]
    test = {
        length: (stack([e.test[length][0] for e in evals]), stack([e.test[length][1] for e in evals]))
        for length in evals[0].test
    }
    return _SeedData(
        sets[0], train_inputs, train_targets,
        stack([e.val_inputs for e in evals]), stack([e.val_targets for e in evals]), test, device,
        start_output=start_output(task),
    )


def _epoch_rows(train_set: TrainingSet, batch_size: int, seeds: Sequence[int], epoch: int, device) -> list[tuple[int, torch.Tensor]]:
    """The epoch's steps as (length index, rows (n, B)): seed s's rows are its own epoch_batches.

    Every length's rows go to the device in one copy per epoch; the steps are views of it.
    """
    per_seed = [train_set.epoch_batches(batch_size, s, epoch) for s in seeds]
    lengths = [i for i, _ in per_seed[0]]
    on_device = {}
    for i in dict.fromkeys(lengths):
        rows = np.stack([np.concatenate([r for j, r in batches if j == i]) for batches in per_seed])  # (n, N_i)
        on_device[i] = torch.as_tensor(rows, device=device)
    steps, start = [], {i: 0 for i in on_device}
    for k, i in enumerate(lengths):
        size = len(per_seed[0][k][1])
        steps.append((i, on_device[i][:, start[i] : start[i] + size]))  # (n, B)
        start[i] += size
    return steps


# --- optimizer state: stacked <-> per seed ---------------------------------------------------------
def _set_stacked_optimizer_state(opt: torch.optim.Optimizer, params: list[nn.Parameter], per_seed: list[list[dict]]) -> None:
    for j, p in enumerate(params):
        keys = per_seed[0][j].keys()
        state = {}
        for key in keys:
            values = [seed_state[j][key] for seed_state in per_seed]
            if values[0].dim() == 0:  # e.g. Adam's step count: the same for every seed
                state[key] = values[0].clone()
            else:
                state[key] = torch.stack(values).to(p.device)
        if state:
            opt.state[p] = state


def _clip_per_seed(params: list[nn.Parameter], max_norm: float) -> None:
    """clip_grad_norm_ applied to each seed's gradients separately (same formula as torch's)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    sq = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0)  # (n,)
    coef = torch.clamp(max_norm / (sq.sqrt() + 1e-6), max=1.0)  # (n,)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


# --- the training loop -----------------------------------------------------------------------------
def train_seeds(study: Study, out_dir: str | Path, device: str | None = None, progress: bool = True) -> dict:
    """Train every seed of ``study.seeds`` together, each into ``out_dir/seed_XXXX/``.

    Parameters
    ----------
    study : the resolved study; ``study.seeds`` lists the seeds (None means just ``study.seed``).
    out_dir : the folder of the seed runs. If it already holds this study, training resumes from
        the last checkpoint that every seed has (a different study there is an error).
    device : overrides ``study.train.device``.
    progress : show a progress bar.

    Returns
    -------
    dict with ``seeds``, ``seed_dirs``, ``steps`` (checkpoint steps), ``final`` (last metrics per
    seed, a list), ``resumed_from`` and ``steps_per_epoch``.

    Raises
    ------
    TrainingError if a seed's loss becomes NaN/inf: the message names the seed(s) and the step;
    finished checkpoints of every seed are kept.
    CheckpointError if ``out_dir`` holds something else, or another process is training into it.
    """
    if study.model.arch not in RECURRENT_ARCHS:
        raise ConfigError(f"model.arch = {study.model.arch!r} has no recurrence; train its seeds with "
                          "rnnautomata.seeds.train_seeds (torch.func stacking)")
    with RunDir(Path(out_dir)).locked():
        return train_stack(study, out_dir, device, progress, recurrent_stack)


@dataclasses.dataclass(frozen=True)
class SeedStack:
    """One architecture family's many seeds as one model: what the shared many-seed loop
    (:func:`train_stack`) needs from it.

    model : the stacked model (``n_outputs``).
    params : its stacked parameters, in the per-seed model's ``parameters()`` order (so a per-seed
        optimizer's state maps onto them one to one).
    supervised : ``(x, y (n, B, T), target, start_output) -> (outputs, targets)``, train.supervised
        for every seed.
    evaluate : ``(data, study, max_length) -> [metrics dict per seed]``, train.evaluate for every seed.
    seed_states : ``() -> [state dict per seed]`` on the CPU (one host copy of every stacked tensor).
    """

    model: object
    params: list
    supervised: Callable
    evaluate: Callable
    seed_states: Callable


def recurrent_stack(models: Sequence[RecurrentModel], device: torch.device) -> SeedStack:
    """The recurrent family's :class:`SeedStack`: :class:`BatchedRecurrent` and its fused recurrence."""
    model = BatchedRecurrent(models).to(device)

    def seed_states() -> list[dict]:
        weights = {name: model.tensor(name).detach().to("cpu") for name in model.param_names + model.buffer_names}
        return [{name: w[k] for name, w in weights.items()} for k in range(model.n_seeds)]

    return SeedStack(model, model.ordered_parameters(),
                     lambda x, y, target, start: _run_supervised(model, x, y, target, start),
                     lambda data, study, max_length: evaluate_seeds(model, data, study, max_length=max_length),
                     seed_states)


def train_stack(study: Study, out_dir: str | Path, device: str | None, progress: bool,
                make_stack: Callable[[list, torch.device], SeedStack]) -> dict:
    """The many-seed loop for any :class:`SeedStack` (``make_stack(models, device)``): data, schedule,
    resume, per-seed checkpoints, NaN checks. Callers hold the folder's lock."""
    if study.train.patience is not None:
        raise ConfigError("train.patience (early stopping) applies to single-seed runs; drop it or drop `seeds`, "
                          "since the seeds of one study train together for the same number of steps")
    dev = resolve_device(device or study.train.device)
    seeds = list(study.seeds) if study.seeds is not None else [study.seed]
    if study.kind != "automata":
        raise ConfigError(f"seeds are supported for kind = 'automata' studies only (got {study.kind!r})")
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

    stack = make_stack(models, dev)
    model, params = stack.model, stack.params
    opt = make_optimizer(params, study)  # elementwise, so per seed
    if resumed_from is not None:
        _set_stacked_optimizer_state(opt, params, [[o.state.get(p, {}) for p in m.parameters()] for m, o in zip(models, seed_opts)])

    def save(step: int) -> list[dict]:
        long_eval = eval_every_steps is None or step % eval_every_steps == 0 or step == total
        records = stack.evaluate(data, study, None if long_eval else LONG_EVAL_LENGTH)
        states = stack.seed_states()
        opt_state = [{key: v.detach().to("cpu") for key, v in opt.state.get(p, {}).items() if torch.is_tensor(v)} for p in params]
        for k, (run, m, o, st) in enumerate(zip(runs, models, seed_opts, studies)):
            # seed k's checkpoint through its own model and optimizer: train.write_checkpoint's format exactly
            m.load_state_dict(states[k])
            for p, state in zip(m.parameters(), opt_state):
                o.state[p] = {key: (v[k] if v.dim() > 0 else v).clone() for key, v in state.items()}  # Adam's step: shared
            rec = {"step": step, "epoch": step / spe, **records[k]}
            write_checkpoint(run, step, step / spe, m, o, st, task, metrics=rec)
            run.append_metrics(rec)
        return records

    checkpoints = Schedule(schedule, done=resumed_from)
    start = resumed_from or 0
    check_every = 1 if dev.type == "cpu" else 25  # a NaN check syncs the GPU: batch it there
    flags: list[tuple[int, int, torch.Tensor]] = []
    records = None
    epoch_steps: list = []  # the current epoch's (length index, rows (n, B)), one per step

    def at(step: int) -> bool:
        nonlocal records
        if checkpoints.due(step):
            records = save(step)
        return False

    def update(state: int) -> None:
        nonlocal flags, epoch_steps
        step, epoch = state + 1, state // spe
        if state % spe == 0 or not epoch_steps:  # a new epoch (or the first step of a resumed run)
            epoch_steps = _epoch_rows(data.train_set, study.train.batch_size, seeds, epoch, dev)
        i, rows = epoch_steps[state - epoch * spe]
        x = _gather_rows(data.train_inputs[i], rows)  # (n, B, L)
        y = _gather_rows(data.train_targets[i], rows)  # (n, B, L)
        out, tgt = stack.supervised(x, y, study.task.target, data.start_output)
        losses = per_seed_loss(out, tgt, study.train.loss, model.n_outputs)  # (n,)
        flags.append((step, epoch, ~torch.isfinite(losses.detach())))
        if len(flags) >= check_every or checkpoints.due(step):
            _check_finite(flags, seeds, runs, top, study)
            flags = []
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # sum over seeds: each slice gets its own seed's gradient
        if study.train.grad_clip is not None:
            _clip_per_seed(params, study.train.grad_clip)
        opt.step()

    run_steps(start, total, at=at, step=update, kept=lambda: _common_steps(runs),
              resumed=resumed_from is not None, kept_where=" for every seed",
              progress=Progress(total, start, progress, f"train {study.name} ×{len(seeds)}"))
    _check_finite(flags, seeds, runs, top, study)
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


def _check_finite(flags: list, seeds: list[int], runs: list[RunDir], top: RunDir, study: Study) -> None:
    if not flags:
        return
    bad = torch.stack([f for _, _, f in flags]).cpu()  # (steps, n)
    if not bad.any():
        return
    first = int(bad.any(1).nonzero()[0, 0])
    step, epoch, _ = flags[first]
    which = [seeds[k] for k in bad[first].nonzero()[:, 0].tolist()]
    named = ", ".join(str(s) for s in which[:8]) + (f" and {len(which) - 8} more" if len(which) > 8 else "")
    done = _common_steps(runs)
    mark_failed([run for s, run in zip(seeds, runs) if s in which], f"non-finite loss at step {step}")
    mark_failed([top], f"non-finite loss at step {step} in seed {named}")
    raise diverged("non-finite", step, detail=f" (epoch {epoch}) in seed{'s' if len(which) > 1 else ''} {named}",
                   lr=study.train.lr, kept=done[-1] if done else None, kept_where=" for every seed")


def _common_steps(runs: list[RunDir]) -> list[int]:
    common = None
    for run in runs:
        steps = set(run.steps())
        common = steps if common is None else common & steps
    return sorted(common or ())


def _prepare_dirs(top: RunDir, runs, study, studies, models, seed_opts, spe, schedule) -> int | None:
    """Create the folders, or check them and load every seed's last common checkpoint. Returns its step."""
    top_toml = study_to_toml(study)
    seeds = [st.seed for st in studies]
    resumed_from = None
    existed = top.exists()
    sources = task_sources(study)
    top.start_or_resume(SEEDS_KIND, top_toml, sources)  # new folder, or this very study there
    if existed:
        for run, st in zip(runs, studies):
            if run.exists() and (not run.study_path.is_file() or run.study_path.read_text() != study_to_toml(st)):
                raise CheckpointError(f"{run.root} holds a different study; delete {top.root} to start over")
        common = _common_steps(runs)
        if common:
            resumed_from = common[-1]
            for run, m, o in zip(runs, models, seed_opts):
                restore(run, resumed_from, m, o, weights=model_state)
                run.restore_metrics(resumed_from)
    for run, st in zip(runs, studies):
        if not run.exists():
            run.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run.study_path, study_to_toml(st))
        if resumed_from is None:
            run.rewrite_metrics([])
        run.write_manifest(kind="automata", status="running", name=st.name, steps_per_epoch=spe, schedule=schedule,
                           sources=sources)
    top.write_manifest(
        kind=SEEDS_KIND, status="running", name=study.name, seeds=seeds, sources=sources,
        seed_dirs=[run.root.name for run in runs], steps_per_epoch=spe, schedule=schedule,
    )
    return resumed_from

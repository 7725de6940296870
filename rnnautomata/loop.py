"""The training skeleton every trainer shares: the checkpoint schedule, resume, the NaN check, the
interrupt and the progress bar.

A trainer (``train.train``, ``batched.train_seeds``, :func:`full_batch_descent` for the icl-family
studies) keeps only what is its own: how one step updates the model, and what a checkpoint saves.
:func:`run_steps` drives the rest. A run's *state* ``s`` is the model after ``s`` updates:

    at(s)    every state (a resumed run's first is already saved): save a checkpoint, record metrics,
             or return True to stop early
    step(s)  one update, state s -> s + 1

    state:   0 ── step(0) ──> 1 ── step(1) ──> 2 ...  total
    at:      ^ at(0)          ^ at(1)          ^ at(2)   ^ at(total)

A loss that is not finite marks the run's manifest failed and raises one :class:`TrainingError`
(:func:`diverged`); an interrupt (Ctrl-C) raises one naming the last checkpoint kept, from which a
rerun of the same command resumes (:func:`restore`). Resumed == uninterrupted is tested for each
trainer (tests/test_train.py, test_batched.py, test_icl_study.py).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Sequence

import torch

from rnnautomata.errors import CheckpointError, TrainingError
from rnnautomata.runs import RunDir, load_checkpoint, save_checkpoint

__all__ = [
    "Progress",
    "Schedule",
    "run_steps",
    "diverged",
    "mark_failed",
    "optimizer_tensors",
    "restore_optimizer",
    "has_state",
    "restore",
    "model_tensors",
    "open_run",
    "record_checkpoint",
    "full_batch_descent",
]


class Progress:
    """A progress bar on stderr (tqdm), or nothing when disabled; ``update``, ``postfix``, ``close``."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def postfix(self, **values: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(refresh=False, **values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Schedule:
    """The checkpoint steps of a run, and which of them are still to be saved.

    >>> s = Schedule([0, 5, 10], done=5)
    >>> [s.due(k) for k in (0, 5, 10)], s.total
    ([False, False, True], 10)
    """

    def __init__(self, steps: Iterable[int], done: int | None = None) -> None:
        self.steps = sorted(set(steps))
        self.done = done
        self._pending = {s for s in self.steps if done is None or s > done}

    @classmethod
    def every(cls, every: int, total: int, done: int | None = None) -> Schedule:
        """Steps 0, ``every``, 2 ``every``, ... and ``total``."""
        return cls([*range(0, total + 1, every), total], done)

    @property
    def total(self) -> int:
        return self.steps[-1]

    def due(self, step: int) -> bool:
        """Whether ``step`` is a checkpoint not saved yet."""
        return step in self._pending


def run_steps(start: int, total: int, *, at: Callable[[int], bool], step: Callable[[int], Any],
              kept: Callable[[], Sequence[int]], progress: Progress, resumed: bool = False,
              kept_where: str = "") -> int | None:
    """Move a model from state ``start`` to state ``total`` (see the module docstring).

    Parameters
    ----------
    at : called at every state ``s`` except a resumed run's first (``resumed``: already saved);
        True stops training there (early stopping).
    step : one update, state ``s`` -> ``s + 1``.
    kept : the checkpoint steps on disk, for the message of an interrupt.
    progress : advanced once a step, closed at the end.
    kept_where : words after "are kept" in that message (e.g. " for every seed").

    Returns
    -------
    The state at which ``at`` stopped training, or None when it ran to ``total``.

    Raises
    ------
    TrainingError on an interrupt (KeyboardInterrupt), naming the last checkpoint kept.
    """
    try:
        for s in range(start, total + 1):
            if not (resumed and s == start) and at(s):
                return s
            if s == total:
                break
            step(s)
            progress.update(1)
    except KeyboardInterrupt:
        done = kept()
        raise TrainingError(
            f"interrupted; checkpoints up to step {done[-1] if done else None} are kept{kept_where}: "
            "rerun the same command to resume"
        ) from None
    finally:
        progress.close()
    return None


def mark_failed(runs: Iterable[RunDir], error: str) -> None:
    """Write ``status = "failed"`` and ``error`` into each run's manifest (its checkpoints stay)."""
    for run in runs:
        run.write_manifest(status="failed", error=error)


def diverged(value: str, step: int, *, lr: float, kept: int | None, detail: str = "", grad_clip: bool = True,
             kept_where: str = "") -> TrainingError:
    """The one-line error of a loss that is not finite (mark the manifests with :func:`mark_failed` first).

    >>> str(diverged("nan", 7, lr=0.1, kept=5, detail=" (epoch 1)"))
    'loss became nan at step 7 (epoch 1); lower train.lr (now 0.1), e.g. --set train.lr=0.025 (or set train.grad_clip); checkpoints up to step 5 are kept'
    """
    clip = " (or set train.grad_clip)" if grad_clip else ""
    return TrainingError(f"loss became {value} at step {step}{detail}; lower train.lr (now {lr}), "
                         f"e.g. --set train.lr={lr / 4:g}{clip}; checkpoints up to step {kept} are kept{kept_where}")


# --- optimizer state and resuming -----------------------------------------------------------------
def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as flat tensors, ``optimizer/<param index>/<key>``."""
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optimizer/{idx}/{key}"] = torch.as_tensor(value).detach().clone()
    return out


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Load the ``optimizer/...`` tensors of a checkpoint (:func:`optimizer_tensors`) into ``opt``."""
    sd = opt.state_dict()
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    sd["state"] = state
    opt.load_state_dict(sd)


def has_state(opt: torch.optim.Optimizer) -> bool:
    """Whether the optimizer keeps per-parameter state (momentum, Adam moments) between steps."""
    return not (isinstance(opt, torch.optim.SGD) and not opt.defaults.get("momentum"))


def model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint's weights under their own names: every tensor but the optimizer's."""
    return {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}


def load_weights(run: RunDir, step: int, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Load checkpoint ``step``'s weights into ``model`` (to measure it); the weights loaded.

    Raises
    ------
    CheckpointError : the checkpoint does not fit ``model`` (one line, the first line of torch's reason).
    """
    weights = model_tensors(load_checkpoint(run.checkpoint_path(step))[0])
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint step {step} does not fit the study's model ({str(err).splitlines()[0]})") from None
    return weights


def restore(run: RunDir, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, device: str | torch.device = "cpu",
            weights: Callable[[dict], dict] = model_tensors) -> None:
    """Load checkpoint ``step`` of ``run`` into ``model`` (``weights`` picks its state dict out of the
    file's tensors) and ``opt``, so that training goes on as if it had never stopped.

    Raises
    ------
    CheckpointError : the checkpoint lacks the optimizer state ``opt`` needs, or does not fit ``model``.
    """
    tensors, _ = load_checkpoint(run.checkpoint_path(step))
    if step > 0 and has_state(opt) and not any(k.startswith("optimizer/") for k in tensors):
        raise CheckpointError(f"{run.root} was written without optimizer state and cannot resume; "
                              "delete the folder (or use another --out) to start over")
    try:
        model.load_state_dict(weights(tensors))
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint step {step} in {run.root} does not fit the study's model "
                              f"({str(err).splitlines()[0]}); delete the folder to start over") from None
    restore_optimizer(opt, {k: v.to(device) for k, v in tensors.items()})


# --- full-batch descent: the icl-family trainer ---------------------------------------------------
def record_checkpoint(run: RunDir, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
                      metadata: dict, records: list, saved: list) -> None:
    """Save the weights (under their own names) and the optimizer state (``optimizer/...``) at
    ``step``, append it to ``saved``, and bring metrics and manifest up to date."""
    tensors = {**model.state_dict(), **optimizer_tensors(opt)}
    save_checkpoint(run.checkpoint_path(step), tensors, {**metadata, "step": str(step)})
    saved.append(step)
    run.rewrite_metrics(records)
    run.write_manifest(steps=saved)


def _study_toml(study: Any) -> str:
    from rnnautomata.icl.config import study_to_toml

    return study_to_toml(study)


def open_run(run: RunDir, study: Any, device: str, model: torch.nn.Module,
             opt: torch.optim.Optimizer) -> tuple[list[dict], list[int]]:
    """Start the run directory of an icl-family study, or resume the run of this very study there.

    Returns ``(records, saved)``: the metrics rows and checkpoint steps kept. When resuming, the
    model and optimizer are loaded from the last checkpoint (:func:`restore`), so the rest of the run
    is the one an uninterrupted run would have made. A folder holding a different study is an error:
    a rerun never overwrites another run's checkpoints or mixes two runs in one folder.
    """
    records: list[dict] = []
    saved = run.start_or_resume(study.kind, _study_toml(study))
    if saved:
        restore(run, saved[-1], model, opt, device)
        records = [r for r in run.read_metrics() if r.get("step", 0) <= saved[-1]]
    run.rewrite_metrics(records)
    run.write_manifest(kind=study.kind, name=study.name, status="running", device=device, steps=saved,
                       total_steps=study.train.epochs)
    return records, saved


def full_batch_descent(run: RunDir, study: Any, device: str, model: torch.nn.Module,
                       opt: torch.optim.Optimizer, train_loss, record, metadata, progress: bool) -> list[dict]:
    """Gradient descent for ``study.train.epochs`` steps: the trainer of the icl-family studies.

    ``train_loss(step)`` -> ``(loss, forward)`` on the step's training data (the whole training set,
    or a batch that depends only on the step, so a resumed run sees the same batches), ``forward`` being
    whatever ``record`` needs from the same pass; ``record(step, loss, forward)`` -> the metrics row,
    every ``train.eval_every`` steps (under no_grad); ``metadata(loss)`` -> the checkpoint's metadata,
    every ``train.checkpoint_every`` steps and at the last. The folder is started or resumed by
    :func:`open_run`. A non-finite loss marks the run failed, keeps its checkpoints and raises
    :class:`TrainingError`. Returns the metrics rows, also written to metrics.jsonl.
    """
    t = study.train
    records, saved = open_run(run, study, device, model, opt)  # resumes from the last checkpoint
    start = saved[-1] if saved else 0
    schedule = Schedule.every(t.checkpoint_every, t.epochs, done=start if saved else None)
    passes: dict[int, tuple] = {}  # state -> (loss, forward) of its training pass, used by its update

    def forward(s: int) -> tuple:
        loss, out = passes.pop(s) if s in passes else train_loss(s)
        if not torch.isfinite(loss):
            run.rewrite_metrics(records)
            mark_failed([run], f"non-finite loss at step {s}")
            raise diverged(str(loss.item()), s, lr=t.lr, kept=saved[-1] if saved else 0, grad_clip=False)
        return loss, out

    def at(s: int) -> bool:
        passes[s] = forward(s)
        loss, out = passes[s]
        if s % t.eval_every == 0:
            with torch.no_grad():
                records.append(record(s, loss, out))
        if schedule.due(s):
            record_checkpoint(run, s, model, opt, metadata(loss), records, saved)
        return False

    def step(s: int) -> None:
        loss, _ = forward(s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    run_steps(start, t.epochs, at=at, step=step, kept=lambda: saved, resumed=bool(saved),
              progress=Progress(t.epochs, start, progress, f"train {study.name}"))
    run.rewrite_metrics(records)
    return records

"""Grokking of modular addition, watched with spectral rank and subspace stability.

A :class:`~rnnautomata.models.mlp.TwoTokenMLP` is trained full-batch with AdamW and strong weight
decay on a fraction of the p² pairs; train accuracy saturates early, test accuracy jumps much later.
Mainali & Teixeira (2025, Sec. 6) read the jump off the weights: as weight decay prunes the memorising
solution the weight matrices' effective rank falls and their leading singular subspaces, which keep
turning while the network memorises, lock in when it generalises. ``track_grokking`` measures both over
the checkpoints and reports them before and after the test-accuracy jump.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rnnautomata.data.sequences import modular_addition, split_pairs
from rnnautomata.errors import CheckpointError
from rnnautomata.icl import figures, measures
from rnnautomata.icl.config import GrokkingStudy
from rnnautomata.loop import full_batch_descent, model_tensors
from rnnautomata.models.mlp import TwoTokenMLP
from rnnautomata.runs import RunDir, atomic_write_json, load_checkpoint

__all__ = ["run_grokking", "track_grokking", "jump_step"]

WEIGHTS = ("embed", "w_in", "w_out")


def _setup(study: GrokkingStudy, device: str):
    p = study.data.modulus
    pairs, target = modular_addition(p, device)
    rng = np.random.default_rng(study.train.seed)
    tr, te = split_pairs(len(pairs), study.data.train_fraction, rng)
    gen = torch.Generator(device=device).manual_seed(study.train.seed)
    model = TwoTokenMLP(p, study.model.embed_dim, study.model.hidden_size, generator=gen, device=device)
    tr, te = torch.as_tensor(tr, device=device), torch.as_tensor(te, device=device)
    return model, (pairs[tr], target[tr]), (pairs[te], target[te])


def run_grokking(study: GrokkingStudy, out: Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train; write study.toml, manifest, metrics.jsonl, checkpoints; return a summary."""
    run = RunDir(out)
    t = study.train
    model, (x_tr, y_tr), (x_te, y_te) = _setup(study, device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, betas=(0.9, 0.98))

    def train_loss(step):
        logits = model(x_tr)
        return F.cross_entropy(logits, y_tr), logits

    def record(step: int, loss: torch.Tensor, logits: torch.Tensor) -> dict:
        test_logits = model(x_te)
        return {
            "step": step, "train/loss": loss.item(),
            "train/acc": float((logits.argmax(-1) == y_tr).float().mean()),
            "test/loss": float(F.cross_entropy(test_logits, y_te)),
            "test/acc": float((test_logits.argmax(-1) == y_te).float().mean()),
            "weights/norm": float(sum(p.pow(2).sum() for p in model.parameters()).sqrt()),
        }

    records = full_batch_descent(run, study, device, model, opt, train_loss, record,
                                 lambda loss: {"kind": "grokking"}, progress)
    run.write_manifest(status="complete", steps=run.steps())
    steps = np.array([r["step"] for r in records])
    summary = {
        "study": study.name,
        "final": {k: records[-1][k] for k in ("train/acc", "test/acc", "train/loss", "test/loss")},
        "train_fit_step": jump_step(steps, np.array([r["train/acc"] for r in records])),
        "test_jump_step": jump_step(steps, np.array([r["test/acc"] for r in records])),
    }
    atomic_write_json(run.root / "summary.json", summary)
    track_grokking(study, run)   # measures.json and figures/measures.*
    return summary


def jump_step(steps: np.ndarray, accuracy: np.ndarray, level: float = 0.5) -> int | None:
    """First step at which ``accuracy`` reaches ``level`` and stays there; None if it never does."""
    below = np.nonzero(accuracy < level)[0]
    if len(below) == 0:
        return int(steps[0])
    if below[-1] == len(accuracy) - 1:
        return None
    return int(steps[below[-1] + 1])


def track_grokking(study: GrokkingStudy, run: RunDir) -> dict:
    """Spectral rank and subspace stability of embed, w_in, w_out over the checkpoints, around the jump."""
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.root} has no checkpoints yet; run `rnnautomata run` first")
    states = [model_tensors(load_checkpoint(run.checkpoint_path(s))[0]) for s in steps]
    k = study.measures.top_k
    spec = measures.spectral_dynamics(states, WEIGHTS, study.measures.rel_tol)
    stab = measures.subspace_stability(states, k, WEIGHTS)
    stab_final = measures.subspace_stability(states, k, WEIGHTS, reference="final")
    metrics = run.read_metrics()
    m_steps = np.array([r["step"] for r in metrics])
    test_acc = np.array([r["test/acc"] for r in metrics])
    jump = jump_step(m_steps, test_acc)
    fit = jump_step(m_steps, np.array([r["train/acc"] for r in metrics]))
    ck = np.array(steps)
    around = {}
    if jump is not None:
        # compare the memorising phase (train fitted, test not yet) with the generalising phase
        before = (ck >= (fit or 0)) & (ck < jump)
        after = ck >= jump
        for name in WEIGHTS:
            er, st = spec[name]["effective_rank"], stab[name]
            around[name] = {
                "effective_rank_at_train_fit": float(er[np.argmin(np.abs(ck - (fit or 0)))]),
                "effective_rank_at_jump": float(er[np.argmin(np.abs(ck - jump))]),
                "effective_rank_final": float(er[-1]),
                "mean_stability_before_jump": float(st[before].mean()) if before.any() else None,
                "mean_stability_after_jump": float(st[after][1:].mean()) if after.sum() > 1 else None,
                "overlap_with_final_at_train_fit": float(stab_final[name][np.argmin(np.abs(ck - (fit or 0)))]),
                "overlap_with_final_at_jump": float(stab_final[name][np.argmin(np.abs(ck - jump))]),
            }
    out = {
        "steps": steps, "train_fit_step": fit, "test_jump_step": jump,
        "spectral": {n: {"effective_rank": v["effective_rank"].tolist(), "rank": v["rank"].tolist()}
                     for n, v in spec.items()},
        "subspace_stability": {n: v.tolist() for n, v in stab.items()},
        "subspace_overlap_with_final": {n: v.tolist() for n, v in stab_final.items()},
        "around_jump": around,
    }
    atomic_write_json(run.root / "measures.json", out)
    acc = (m_steps, np.array([r["train/acc"] for r in metrics]), test_acc)
    fig = figures.measures_figure(ck, {n: v["effective_rank"] for n, v in spec.items()}, stab,
                                  f"{study.name}: grokking (test jump at step {jump})", accuracy=acc)
    figures.save_figure(fig, run.figures_dir / "measures")
    return out

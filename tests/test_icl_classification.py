"""Nguyen & Reddy in-context classification: generator, model, metrics, the study's run directory.

Unit tier except the last two tests (integration: a tiny run of a few seconds).
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rnnautomata.errors import ConfigError
from rnnautomata.icl.classification import (
    AttentionMLP,
    ItemClassification,
    accuracy,
    classification_loss,
    fit_threshold,
    icl_level,
    summarise,
)
from rnnautomata.icl.config import study_to_toml
from rnnautomata.icl.grokking import jump_step
from rnnautomata.icl.study import load_study, run_study, track_run

TASKS = Path(__file__).resolve().parents[1] / "tasks"


def task(k=50, d=8, n=6, labels=2, noise=0.0, p_bursty=1.0, seed=0):
    return ItemClassification(d, k, labels, n, noise, p_bursty, np.random.default_rng(seed))


def item_of(t: ItemClassification, x: np.ndarray) -> np.ndarray:
    """Index of the trained item each noiseless token x (…, D) equals."""
    return np.argmin(((x[..., None, :] - t.items) ** 2).sum(-1), axis=-1)


def test_items_labels_and_token_layout():
    t = task(k=1000, d=40, labels=3)
    assert t.items.shape == (1000, 40)
    assert np.mean(t.items ** 2) * 40 == pytest.approx(1.0, rel=0.05)        # μ ~ N(0, I/D): E|μ|² = 1
    assert np.bincount(t.labels).tolist() == [334, 333, 333]                  # balanced labels
    b = t.train_batch(32, np.random.default_rng(1))
    assert b.tokens.shape == (32, 7, 43) and b.target.shape == (32,)
    assert torch.all(b.tokens[:, -1, 40:] == 0)                               # query label zeroed
    assert torch.all(b.tokens[:, :-1, 40:].sum(-1) == 1)                      # one-hot context labels
    idx = item_of(t, b.tokens[..., :40].numpy())
    assert np.array_equal(t.labels[idx[:, -1]], b.target.numpy())            # target = the query item's label
    assert np.array_equal(b.tokens[:, :-1, 40:].argmax(-1).numpy(), t.labels[idx[:, :-1]])


def test_noise_keeps_the_token_norm():
    t = task(k=200, d=100, noise=1.0)
    x = t.train_batch(64, np.random.default_rng(2)).tokens[..., :100].numpy()
    assert np.mean((x ** 2).sum(-1)) == pytest.approx(1.0, rel=0.05)          # (μ + εη)/√(1+ε²)


def test_bursty_sequences_hold_the_query_item_and_others_follow_chance():
    t = task(k=50, n=6)
    idx = item_of(t, t.train_batch(500, np.random.default_rng(3)).tokens[..., :8].numpy())
    assert np.all((idx[:, :-1] == idx[:, -1:]).any(1))
    t0 = task(k=50, n=6, p_bursty=0.0)
    idx = item_of(t0, t0.train_batch(4000, np.random.default_rng(4)).tokens[..., :8].numpy())
    present = (idx[:, :-1] == idx[:, -1:]).any(1).mean()
    assert present == pytest.approx(1 - (1 - 1 / 50) ** 6, abs=0.03)        # iid draws: P(query in context)


def test_icl_and_iwl_test_sets_are_what_they_claim():
    t = task(k=50, n=6)
    icl = t.icl_batch(200, np.random.default_rng(5))
    x = icl.tokens[..., :8].numpy()
    same = np.abs(x[:, :-1] - x[:, -1:]).sum(-1) < 1e-6                       # noise 0: exact copy
    assert np.all(same.any(1))                                                # query item in context
    lab = icl.tokens[:, :-1, 8:].argmax(-1).numpy()
    assert np.all(lab[same.nonzero()] == icl.target.numpy()[same.nonzero()[0]])   # its label there = target
    assert np.min(np.abs(x[..., None, :] - t.items).sum(-1)) > 1e-3           # novel items
    iwl = t.iwl_batch(200, np.random.default_rng(6))
    idx = item_of(t, iwl.tokens[..., :8].numpy())
    assert all(len(set(r)) == 7 for r in idx)                                  # distinct: query not in context
    assert np.array_equal(t.labels[idx[:, -1]], iwl.target.numpy())
    with pytest.raises(ValueError, match="n_items > n_context"):
        task(k=5, n=6).iwl_batch(2, np.random.default_rng(0))


def test_model_forward_matches_an_explicit_loop():
    torch.manual_seed(0)
    model = AttentionMLP(5, 2, 16, generator=torch.Generator().manual_seed(1))
    tokens = torch.randn(3, 4, 7)
    got = model(tokens)
    for b in range(3):
        z = [torch.nn.functional.layer_norm(tokens[b, j], (7,), model.norm.weight, model.norm.bias) for j in range(4)]
        q = model.query.weight @ z[-1]
        scores = torch.stack([q @ (model.key.weight @ z[j]) for j in range(4)])      # scale 1, causal: all ≤ query
        w = torch.exp(scores - scores.max()) / torch.exp(scores - scores.max()).sum()
        h = z[-1] + sum(w[j] * (model.value.weight @ z[j]) for j in range(4))
        assert got[b].item() == pytest.approx(model.mlp(h).item(), abs=1e-5)
    three = AttentionMLP(5, 3, 16, generator=torch.Generator().manual_seed(1))
    assert three(torch.randn(2, 4, 8)).shape == (2, 3)


def test_same_generator_gives_the_same_init():
    a = AttentionMLP(5, 2, 16, generator=torch.Generator().manual_seed(3))
    b = AttentionMLP(5, 2, 16, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_accuracy_and_loss_of_a_hand_built_predictor():
    target = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])
    logits = torch.tensor([2.0, -1.0, -3.0, 0.5, 1.0, -2.0, 4.0, -0.1])       # wrong at 2 and 4: 6/8
    assert accuracy(logits, target) == 0.75
    want = np.mean([math.log1p(math.exp(-s * z)) for s, z in zip((2 * target - 1).tolist(), logits.tolist())])
    assert classification_loss(logits, target).item() == pytest.approx(want, rel=1e-6)
    three = torch.tensor([[3.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0], [1.0, 0, 0]])
    assert accuracy(three, torch.tensor([0, 1, 1, 2])) == 0.5


def test_t_icl_is_the_first_step_that_stays_above_half_way():
    rec = [{"step": s, "acc/icl": a, "acc/iwl": 0.5, "loss/icl": 0, "loss/iwl": 0, "train/loss": 0}
           for s, a in [(0, 0.5), (10, 0.8), (20, 0.6), (30, 0.9), (40, 0.95)]]
    study = load_study({"kind": "icl_classification", "data": {"n_items": 200}})
    s = summarise(study, rec, jump_step)
    assert icl_level(2) == 0.75 and s["t_icl"] == 30 and s["t_iwl"] is None
    assert s["peak_icl"] == {"acc": 0.95, "step": 40} and not s["icl_transient"]


def test_threshold_fit_recovers_a_known_midpoint():
    k = np.array([64, 128, 256, 512, 1024, 2048] * 2)
    acc = 0.5 + 0.5 / (1 + np.exp(-(np.log(k) - np.log(300.0)) / 0.4))
    k_star, width = fit_threshold(k, acc)
    assert k_star == pytest.approx(300.0, rel=1e-3) and width == pytest.approx(0.4, rel=1e-3)
    with pytest.raises(ValueError, match="straddle"):
        fit_threshold(k, np.full(12, 0.5))


@pytest.mark.parametrize("raw, match", [
    ({"data": {"n_items": 50, "n_context": 100}}, "data.n_items"),
    ({"data": {"p_bursty": 1.5}}, "data.p_bursty"),
    ({"data": {"n_labels": 1}}, "data.n_labels"),
    ({"train": {"batch_size": 0}}, "train.batch_size must be positive"),
    ({"model": {"mlp_widht": 3}}, "unknown field model.mlp_widht"),
])
def test_invalid_studies_name_the_field(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_study({"kind": "icl_classification", **raw})


def test_shipped_study_loads_and_round_trips():
    study = load_study(tomllib.loads((TASKS / "icl_classification_small.toml").read_text()))
    assert load_study(tomllib.loads(study_to_toml(study))) == study


def tiny() -> dict:
    return {"kind": "icl_classification", "name": "tiny_cls",
            "data": {"x_dim": 6, "n_items": 40, "n_context": 5, "n_test": 100},
            "model": {"mlp_width": 16},
            "train": {"lr": 0.05, "batch_size": 16, "epochs": 40, "eval_every": 10, "checkpoint_every": 20,
                      "weight_decay": 1e-3}}


def test_run_writes_metrics_and_is_deterministic(tmp_path):
    study = load_study(tiny())
    summary = run_study(study, tmp_path / "a", "cpu", progress=False)
    run_study(study, tmp_path / "b", "cpu", progress=False)
    a = tmp_path / "a"
    for f in ("study.toml", "manifest.json", "metrics.jsonl", "summary.json", "figures/accuracy.png",
              "checkpoints/step_000000.safetensors", "checkpoints/step_000040.safetensors"):
        assert (a / f).is_file(), f
    rows = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40]
    assert {"acc/icl", "acc/iwl", "loss/icl", "loss/iwl", "train/loss", "train/acc"} <= set(rows[0])
    assert (tmp_path / "b" / "metrics.jsonl").read_text() == (a / "metrics.jsonl").read_text()
    assert summary["final"]["acc/icl"] == rows[-1]["acc/icl"]
    tracked = track_run(a)
    assert tracked["steps"] == [0, 20, 40] and tracked["acc/icl"][-1] == pytest.approx(rows[-1]["acc/icl"])


def test_resumed_run_equals_uninterrupted(tmp_path):
    raw = tiny()
    run_study(load_study(raw), tmp_path / "full", "cpu", progress=False)
    short = {**raw, "train": {**raw["train"], "epochs": 20}}
    run_study(load_study(short), tmp_path / "part", "cpu", progress=False)
    run_study(load_study(raw), tmp_path / "part", "cpu", progress=False)       # --set train.epochs=40 continues
    assert (tmp_path / "part" / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()

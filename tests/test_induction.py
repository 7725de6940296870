"""Study kind ``induction``: data by brute force, a hand-set induction circuit, and a tiny run through the CLI."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from rnnautomata.data.induction import check_task, make_batch
from rnnautomata.errors import ConfigError
from rnnautomata.studies import get_kind
from rnnautomata.studies.induction import (
    InductionData,
    InductionStudy,
    build_model,
    circuits,
    evaluate,
    fixed_test_batch,
    load_study,
    onset_summary,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

torch.set_num_threads(1)


def previous_occurrence(tokens, t):
    """The most recent s < t with tokens[s] == tokens[t], or None (a plain loop: the ground truth)."""
    for s in range(t - 1, -1, -1):
        if tokens[s] == tokens[t]:
            return s
    return None


@pytest.mark.parametrize("data", [
    InductionData(vocab_size=40, seq_len=30, min_segment=3, max_segment=9, n_copies=3),
    InductionData(vocab_size=26, seq_len=24, min_segment=2, max_segment=12, n_copies=2),
    InductionData(task="recall", vocab_size=20, seq_len=22, n_pairs=7),
])
def test_every_predictable_target_is_the_token_after_the_previous_occurrence(data):
    check_task(data)
    batch = make_batch(data, np.random.default_rng(0), 200)
    B, T = batch.tokens.shape
    assert (B, T) == (200, data.seq_len) and batch.tokens.min() >= 0 and batch.tokens.max() < data.vocab_size
    for b in range(B):
        x = batch.tokens[b].tolist()
        masked = []
        for t in range(T - 1):
            s = previous_occurrence(x, t)
            if batch.mask[b, t]:
                masked.append(t)
                assert s is not None and batch.source[b, t] == s
                assert batch.target[b, t] == x[t + 1] == x[s + 1]
            else:
                assert batch.source[b, t] == -1
        assert not batch.mask[b, T - 1] and masked
        if data.task == "copy":
            # predictable exactly where the current and the next token both occurred before
            seen = [previous_occurrence(x, t) is not None for t in range(T)]
            assert masked == [t for t in range(T - 1) if seen[t] and seen[t + 1]]
            L = (len(masked) + 1) // (data.n_copies - 1)
            assert data.min_segment <= L <= data.max_segment and len(set(x)) == T - (data.n_copies - 1) * L
        else:
            assert masked == list(range(2 * data.n_pairs, T, 2))
            assert all(v >= data.vocab_size // 2 for v in x[1:2 * data.n_pairs:2])


def test_segment_lengths_and_offsets_vary():
    batch = make_batch(InductionData(), np.random.default_rng(1), 300)
    first = batch.mask.argmax(1)                         # where predictions start: offset + L
    lengths = batch.mask.sum(1) + 1                      # (n_copies - 1) L - 1 predictable positions
    assert len(set(lengths.tolist())) == InductionData().max_segment - InductionData().min_segment + 1
    assert len(set((first - lengths).tolist())) > 10     # the offset


@pytest.mark.parametrize("raw, match", [
    ({"data": {"n_copies": 1}}, "data.n_copies"),
    ({"data": {"vocab_size": 20}}, "data.vocab_size"),
    ({"data": {"max_segment": 20}}, "data.n_copies × data.max_segment"),
    ({"data": {"min_segment": 9, "max_segment": 8}}, "data.max_segment"),
    ({"data": {"task": "recall", "seq_len": 17}}, "data.seq_len"),
    ({"data": {"task": "recall", "n_pairs": 40}}, "data.vocab_size"),
    ({"data": {"task": "sort"}}, "data.task"),
    ({"model": {"n_layers": 1}}, "model.n_layers"),
    ({"train": {"checkpoint_every": 30}}, "train.checkpoint_every"),
    ({"measures": {"top_k": 40}}, "measures.top_k"),
    ({"train": {"lr": -1.0}}, "train.lr"),
])
def test_impossible_settings_are_one_line_errors(raw, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_study(raw)
    assert "\n" not in str(err.value)


def test_study_round_trips_through_its_toml():
    from rnnautomata.icl.config import study_to_toml  # what open_run writes as study.toml

    study = load_study({"name": "x", "data": {"task": "recall", "seq_len": 24}, "model": {"d_head": 8}})
    assert get_kind("induction").load({"kind": "induction", **tomllib.loads(study_to_toml(study))}) == study


# --------------------------------------------------------------------------- a hand-set induction circuit
def _signed(d: int, offset: int, index: int) -> torch.Tensor:
    """+1 at offset + 2 index, −1 at the next slot: a one-hot whose mean is 0 (LayerNorm only rescales it)."""
    v = torch.zeros(d)
    v[offset + 2 * index], v[offset + 2 * index + 1] = 1.0, -1.0
    return v


def hand_set_model(V: int, T: int, c: float = 2.0):
    """Layer 0: a previous-token head (by position); layer 1: an induction head (its query's token
    against its key's previous token) that copies the attended token into an output block."""
    n_tok, n_pos = V + 1, T + 1                                   # tokens with BOS, positions with BOS
    TOK, POS = 0, 2 * n_tok
    PREV, OUT = POS + 2 * n_pos, POS + 2 * n_pos + 2 * n_tok
    d, E = OUT + 2 * n_tok, max(n_pos, n_tok) + 1
    study = InductionStudy(data=InductionData(vocab_size=V, seq_len=T),
                           model=types.SimpleNamespace(n_layers=2, d_model=d, n_heads=1, d_head=E, positional="learned",
                                                       init_std=None), train=types.SimpleNamespace(seed=0))
    model = build_model(study)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith(".w") else p.zero_()
        for i in range(n_tok):
            model.W_E[i] = _signed(d, TOK, i)
        for p in range(n_pos):
            model.W_pos[p] = _signed(d, POS, p)
        a0, a1 = model.blocks[0].attn, model.blocks[1].attn
        for p in range(n_pos):                                    # query at p matches the key at p − 1
            a0.W_Q[0, POS + 2 * p, p] = c
            if p + 1 < E:
                a0.W_K[0, POS + 2 * p, p + 1] = c
        s0, s1 = 2 / d ** 0.5, (6 / d) ** 0.5                       # LayerNorm's scale: 2, then 3 signed one-hots
        for i in range(n_tok):
            a0.W_V[0, TOK + 2 * i, i], a0.W_V[0, TOK + 2 * i + 1, i] = 1.0, -1.0     # read the attended token
            a0.W_O[0, i, PREV + 2 * i], a0.W_O[0, i, PREV + 2 * i + 1] = s0 / 2, -s0 / 2  # write it as "previous"
            a1.W_Q[0, TOK + 2 * i, i], a1.W_Q[0, TOK + 2 * i + 1, i] = c, -c          # my token ...
            a1.W_K[0, PREV + 2 * i, i], a1.W_K[0, PREV + 2 * i + 1, i] = c, -c        # ... is your previous token
            a1.W_V[0, TOK + 2 * i, i], a1.W_V[0, TOK + 2 * i + 1, i] = 1.0, -1.0     # copy your token
            a1.W_O[0, i, OUT + 2 * i], a1.W_O[0, i, OUT + 2 * i + 1] = s1 / 2, -s1 / 2
        for i in range(V):
            model.W_U[OUT + 2 * i, i] = 5.0                          # logit 5 / s2 for the copied token, 0 else
    return model, study


@pytest.mark.parametrize("task", ["copy", "recall"])
def test_hand_set_circuit_copies_and_scores_high_random_model_does_not(task):
    V, T = 16, 16
    data = (InductionData(vocab_size=V, seq_len=T, min_segment=3, max_segment=8, n_test=128) if task == "copy"
            else InductionData(task="recall", vocab_size=V, seq_len=T, n_pairs=4, n_test=128))
    model, _ = hand_set_model(V, T)
    batch = fixed_test_batch(load_study({"data": dataclass_dict(data)}))
    good = evaluate(model, batch)
    assert good["icl/acc"] > 0.97 and good["induction/score"] > 0.9
    assert good["prev_token/score"] > 0.95
    assert good["induction_shift/k"] == 1 and good["induction/shifted_score"] == good["induction/score"]
    # a random model of the same shape: chance accuracy, near-uniform attention
    random = build_model(load_study({"data": dataclass_dict(data), "model": {"d_model": 32}}))
    bad = evaluate(random, batch)
    t = np.nonzero(batch["mask"].numpy())[1]
    uniform = float(np.mean(1.0 / (t + 2)))                       # position t + 1 sees t + 2 keys, BOS included
    assert bad["icl/acc"] < 3 / V
    assert abs(bad["induction/score"] - uniform) < 0.1 and bad["prev_token/score"] < 0.3


def dataclass_dict(data) -> dict:
    import dataclasses

    return dataclasses.asdict(data)


def test_circuits_are_the_products_of_the_head_weights():
    model = build_model(load_study({"model": {"d_model": 16, "n_heads": 2}}))
    state = model.state_dict()
    with torch.no_grad():
        state["blocks.1.ln1.w"].mul_(2.0)
    mats = circuits(state, 2, 2)
    q, k = state["blocks.1.attn.W_Q"][1].double(), state["blocks.1.attn.W_K"][1].double()
    np.testing.assert_allclose(mats["QK_L1H1"], (4 * q @ k.T).numpy(), rtol=1e-10)
    assert np.linalg.matrix_rank(mats["OV_L0H0"]) == 8 and mats["QK_L0H0"].shape == (16, 16)


def test_onset_finds_the_jump_and_which_measures_move_with_it():
    study = load_study({"train": {"eval_every": 10, "checkpoint_every": 10}})
    steps = np.arange(0, 1000, 10)
    acc = 1 / (1 + np.exp(-(steps - 500) / 15))
    rows = [{"step": int(s), "icl/acc": float(a), "induction/score": float(0.1 + 0.8 * a),
             "spectral/QK_L0H0": 3.0 + 0.001 * s, "stability/QK_L0H0": float(1 - 0.1 * a * (1 - a))}
            for s, a in zip(steps, acc)]
    out = onset_summary(study, rows)
    half = (1 + 1 / study.data.vocab_size) / 2                  # half-way between chance and 1
    assert out["onset_step"] == steps[acc >= half][0] == 510 and out["rise_start"] < 510 < out["rise_end"]
    assert out["measures"]["induction/score"]["in_rise"] and out["measures"]["induction/score"]["rate_ratio"] > 5
    assert out["measures"]["stability/QK_L0H0"]["fastest_change_step"] == 500
    assert out["measures"]["spectral/QK_L0H0"]["rate_ratio"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------- CLI
TINY = """kind = "induction"
[data]
vocab_size = 16
seq_len = 12
min_segment = 2
max_segment = 5
n_test = 16
[model]
d_model = 16
[train]
batch_size = 8
epochs = {epochs}
eval_every = 4
checkpoint_every = 4
"""


def test_cli_run_writes_the_metric_keys_and_resumes(tmp_path):
    from rnnautomata.cli import main

    for name, epochs in (("full", 12), ("part", 8)):
        (tmp_path / f"{name}.toml").write_text(TINY.format(epochs=epochs))
    assert main(["run", str(tmp_path / "full.toml"), "--out", str(tmp_path / "full"), "--quiet"]) == 0
    assert main(["run", str(tmp_path / "part.toml"), "--out", str(tmp_path / "part"), "--quiet", "--no-render"]) == 0
    assert main(["run", str(tmp_path / "part.toml"), "--out", str(tmp_path / "part"), "--quiet", "--no-render",
                 "--set", "train.epochs=12"]) == 0
    full = tmp_path / "full"
    rows = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 4, 8, 12]
    keys = {"train/loss", "train/acc", "icl/loss", "icl/acc", "induction/score", "prev_token/score",
            "attn/induction_L1H0", "attn/prev_token_L0H1", "spectral/QK_L1H0", "spectral/OV_L0H1",
            "stability/QK_L0H0", "stability/OV_L1H1", "composition/k_L1H0", "induction/shifted_score",
            "induction_shift/k"}
    assert keys <= set(rows[0]) and rows[0]["stability/QK_L0H0"] == 1.0 and rows[1]["stability/QK_L0H0"] < 1.0
    # resumed (8 steps, then 4 more) == uninterrupted, stability across the resume included
    assert (tmp_path / "part" / "metrics.jsonl").read_text() == (full / "metrics.jsonl").read_text()
    assert (full / "figures" / "induction.png").is_file()
    assert (full / "report.html").is_file() and not (tmp_path / "part" / "report.html").exists()  # --no-render: none
    kind = get_kind("induction")
    flat = kind.summarise(full)
    assert flat["final_icl_acc"] == rows[-1]["icl/acc"] and "onset_step" in flat
    assert all(not isinstance(v, (dict, list)) for v in flat.values())
    tracked = kind.track(full)
    assert tracked["steps"] == [0, 4, 8, 12]
    assert main(["track", str(full), "--quiet"]) == 0
    measures = json.loads((full / "measures.json").read_text())
    assert measures["rows"][-1]["icl/acc"] == pytest.approx(rows[-1]["icl/acc"])
    assert measures["rows"][-1]["induction/score"] == pytest.approx(rows[-1]["induction/score"])


def test_shifted_score_finds_attention_k_tokens_after_the_previous_occurrence():
    from rnnautomata.studies.induction import SHIFTS, attention_scores

    batch = fixed_test_batch(load_study({"data": {"min_segment": 5}}))
    B, T = batch["tokens"].shape
    pattern = torch.zeros(B, 1, T + 1, T + 1)
    pattern[:, 0, torch.arange(T + 1), 0] = 1.0                     # everyone on BOS ...
    for b, t in torch.nonzero(batch["mask"]).tolist():               # ... but predictable t on token s + 3
        s = int(batch["source"][b, t])
        pattern[b, 0, t + 1] = 0.0
        pattern[b, 0, t + 1, s + 3 + 1] = 1.0
    out = attention_scores({"blocks.0.attn.hook_pattern": pattern, "blocks.1.attn.hook_pattern": pattern}, batch, 2)
    assert out["induction_L1"][0] == 0.0
    np.testing.assert_allclose(out["shifted_L1"][:, 0], [1.0 if k == 3 else 0.0 for k in SHIFTS])

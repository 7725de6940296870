"""Study kind ``induction``: an attention-only transformer learns in-context copying.

A 2-layer attention-only :class:`~rnnautomata.models.transformer.Transformer` is trained with AdamW
on fresh batches of :mod:`rnnautomata.data.induction` (a repeated random segment, or associative
recall), the cross-entropy taken only at the positions predictable in context. The minimal circuit
(Olsson et al. 2022) is a *previous-token head* in layer 0 (position t attends to t − 1 and writes
that token into t's residual stream) and an *induction head* in layer 1 (the query at t, holding
token A, matches keys whose previous token is A, and copies the token found there). Reddy (2023)
traces the abrupt in-context-learning onset to that head forming.

Every ``train.eval_every`` steps a row of metrics.jsonl records, on a fixed test set:

- ``icl/acc``, ``icl/loss``: accuracy and cross-entropy at the predictable positions;
- ``induction/score``: attention from each predictable position t to ``source[t] + 1`` (the token
  after the previous occurrence of x_t) in layer 1's pattern, averaged; the max over heads
  (``attn/induction_L1H{h}`` per head). ``induction/shifted_score``: the same to token
  ``source[t] + k``, max over heads and k = 1..8 (``induction_shift/k`` the best k), which also sees
  circuits whose layer 0 looks back k > 1 tokens. ``prev_token/score``: layer 0's attention from t to t − 1,
  averaged over all positions t ≥ 1 of the string; max over heads (``attn/prev_token_L0H{h}``);
- the attention circuits of every head, with the pre-attention LayerNorm's gain folded in (row
  convention, x ↦ x W): W_QK = diag(w) W_Q W_Kᵀ diag(w) (d × d; the bilinear form of the
  attention score between a query's and a key's residual stream) and W_OV = diag(w) W_V W_O
  (d × d; what a head writes given the residual stream it attends to). ``spectral/QK_L{l}H{h}``
  and ``spectral/OV_L{l}H{h}``: their effective rank (rnnautomata.icl.measures.effective_rank);
  ``stability/QK_L{l}H{h}`` and ``stability/OV_...``: overlap of their top-k left singular subspaces
  (the residual directions a head reads: at the query for QK, at the attended token for OV) with
  those of the previous row (measures.subspace_overlap; 1 = unchanged);
- ``composition/k_L1H{h}``: K-composition of layer 1's head h with layer 0 (Elhage et al. 2021):
  max over layer-0 heads h' of ‖W_QK^{1,h} (W_OV^{0,h'})ᵀ‖_F / (‖W_QK‖_F ‖W_OV‖_F).

The onset (``onset_step``) is :func:`rnnautomata.icl.grokking.jump_step` of ``icl/acc`` at half-way
between chance (1/V) and 1; ``rise`` spans the steps at which it stays above 20 % and 80 % of the
way. For every measure, summary.json gives the step of its fastest change and how much faster it
changes inside the rise than outside it (``rate_ratio``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rnnautomata.errors import CheckpointError, ConfigError
from rnnautomata.fields import positive_numbers
from rnnautomata.icl.config import Measures
from rnnautomata.studies.base import StudyKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["InductionData", "InductionModel", "InductionTrain", "InductionMeasures", "InductionStudy",
           "InductionKind", "load_study", "build_model", "evaluate", "circuits", "circuit_measures",
           "onset_summary"]


@dataclass(frozen=True)
class InductionData:
    task: str = "copy"                  # "copy" (a segment repeated) or "recall" (key-value pairs, then queries)
    vocab_size: int = 64                # V, tokens 0..V-1
    seq_len: int = 32                   # T, tokens per sequence
    min_segment: int = 4                # copy: shortest repeated segment (drawn per sequence)
    max_segment: int = 14               # copy: longest repeated segment
    n_copies: int = 2                   # copy: how many times the segment appears back to back
    n_pairs: int = 8                    # recall: key-value pairs before the queries
    n_test: int = 256                   # sequences in the fixed test set


@dataclass(frozen=True)
class InductionModel:
    n_layers: int = 2                   # attention-only blocks (≥ 2: previous-token head + induction head)
    d_model: int = 64                   # residual width
    n_heads: int = 2                    # heads per block
    d_head: int | None = None           # None: d_model // n_heads
    positional: str = "learned"         # "learned", "sinusoidal", "rope" or "none"
    init_std: float | None = None       # std of the W_* at init; None: 0.8 / sqrt(d_model)


@dataclass(frozen=True)
class InductionTrain:
    lr: float = 1e-3                    # AdamW learning rate
    weight_decay: float = 0.0           # AdamW weight decay
    batch_size: int = 64                # sequences per step, fresh every step (a function of seed and step)
    epochs: int = 2000                  # optimizer steps (named as in the other studies)
    eval_every: int = 20                # steps between metric rows
    checkpoint_every: int = 100         # steps between checkpoints (a multiple of eval_every)
    seed: int = 0                       # seeds the init, the batches and the test set


#: the circuit measures' settings: the ICL studies' (top_k: leading singular subspace size for subspace
#: stability; rel_tol: a singular value counts towards `rank` in measures.json above rel_tol × the largest)
InductionMeasures = Measures


@dataclass(frozen=True)
class InductionStudy:
    kind: str = "induction"
    name: str = "induction"
    data: InductionData = field(default_factory=InductionData)
    model: InductionModel = field(default_factory=InductionModel)
    train: InductionTrain = field(default_factory=InductionTrain)
    measures: InductionMeasures = field(default_factory=InductionMeasures)


_SECTIONS = ("data", "model", "train", "measures")
_NONNEGATIVE = {"train.weight_decay", "train.seed"}
_CHOICES = {"data.task": ("copy", "recall"), "model.positional": ("none", "learned", "sinusoidal", "rope")}


_check_value = positive_numbers(_CHOICES, _NONNEGATIVE)


def load_study(raw: Mapping[str, Any]) -> InductionStudy:
    """A validated :class:`InductionStudy` from a parsed study TOML; ``ConfigError`` naming the field."""
    from rnnautomata.data.induction import check_task
    from rnnautomata.fields import build_study

    study = build_study(InductionStudy, raw, _SECTIONS, _check_value)
    check_task(study.data)
    m, t = study.model, study.train
    if m.n_layers < 2:
        raise ConfigError(f"model.n_layers must be at least 2 (a previous-token head, then an induction head); got {m.n_layers}")
    d_head = m.d_model // m.n_heads if m.d_head is None else m.d_head
    if d_head < 1:
        raise ConfigError(f"model.d_model ({m.d_model}) // model.n_heads ({m.n_heads}) is 0; set model.d_head or fewer heads")
    if m.positional == "rope" and d_head % 2:
        raise ConfigError(f"model.positional = 'rope' needs an even head width (d_head = {d_head})")
    if t.checkpoint_every % t.eval_every:
        raise ConfigError(f"train.checkpoint_every ({t.checkpoint_every}) must be a multiple of train.eval_every "
                          f"({t.eval_every}), so that a resumed run measures exactly what an uninterrupted one does")
    if study.measures.top_k > d_head:
        raise ConfigError(f"measures.top_k ({study.measures.top_k}) exceeds the rank of a head's circuits "
                          f"(d_head = {d_head}); lower it")
    return study


# ------------------------------------------------------------------------------------ model, data
def build_model(study: InductionStudy, device: str = "cpu"):
    """The study's attention-only transformer, initialised from ``train.seed``."""
    import torch

    from rnnautomata.models.transformer import Transformer, init_weights

    d, m = study.data, study.model
    model = Transformer(d.vocab_size, d.vocab_size, n_layers=m.n_layers, d_model=m.d_model, n_heads=m.n_heads,
                        d_head=m.d_head, attn_only=True, positional=m.positional, max_length=d.seq_len)
    init_weights(model, m.init_std, torch.Generator().manual_seed(study.train.seed))
    return model.to(device)


def _tensors(batch, device):
    import torch

    return {k: torch.as_tensor(getattr(batch, k), device=device) for k in ("tokens", "target", "mask", "source")}


def fixed_test_batch(study: InductionStudy, device: str = "cpu") -> dict:
    """The fixed test batch (a function of the seed only) as tensors."""
    from rnnautomata.data.induction import make_batch

    return _tensors(make_batch(study.data, np.random.default_rng([study.train.seed, 1]), study.data.n_test), device)


def masked_loss(model, batch: dict):
    """Cross-entropy (a tensor) and accuracy at the predictable positions, and the hook cache."""
    from torch.nn import functional as F

    logits, cache = model.run_with_cache(batch["tokens"])               # (B, T + 1, V); position 0 = BOS
    out = logits[:, 1:][batch["mask"]]                                  # (M, V) after reading x_t
    target = batch["target"][batch["mask"]]                             # (M,)
    return F.cross_entropy(out, target), float((out.argmax(-1) == target).float().mean()), cache


#: the shifts k of the shifted induction score: attention from t to token source[t] + k
SHIFTS = tuple(range(1, 9))


def attention_scores(cache: Mapping, batch: dict, n_layers: int) -> dict[str, np.ndarray]:
    """Per layer: ``induction`` (H,), ``prev_token`` (H,) and ``shifted`` (len(SHIFTS), H) mean attention.

    Model position p + 1 holds token p (position 0 is BOS). Induction: from each masked t to the
    token after the previous occurrence, source[t] + 1, i.e. pattern[b, h, t + 1, source + 2].
    Shifted: the same to token source[t] + k for each k in :data:`SHIFTS` (0 where that token lies
    after t); k = 1 is the induction score. Previous token: from every token t ≥ 1 to token t − 1,
    pattern[b, h, t + 1, t].
    """
    import torch

    b, t = torch.nonzero(batch["mask"], as_tuple=True)                  # (M,), (M,)
    s = batch["source"][b, t]                                           # (M,)
    T = batch["tokens"].shape[1]
    pos = torch.arange(1, T, device=batch["tokens"].device)             # tokens 1..T-1
    out = {}
    for layer in range(n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]            # (B, H, T + 1, T + 1)
        out[f"induction_L{layer}"] = pattern[b, :, t + 1, s + 2].mean(0).cpu().numpy()       # (H,)
        out[f"prev_token_L{layer}"] = pattern[:, :, pos + 1, pos].mean((0, 2)).cpu().numpy()  # (H,)
        shifted = []
        for k in SHIFTS:
            key = s + 1 + k                                             # (M,) model position of token s + k
            seen = (key <= t + 1).to(pattern.dtype)                     # (M,) keys after the query get no attention
            shifted.append((pattern[b, :, t + 1, key.clamp(max=T)] * seen[:, None]).mean(0))  # (H,)
        out[f"shifted_L{layer}"] = torch.stack(shifted).cpu().numpy()  # (K, H)
    return out


def evaluate(model, batch: dict) -> dict:
    """``icl/acc``, ``icl/loss``, ``induction/score``, ``prev_token/score``, the per-head scores, and
    the shifted induction score of layer 1 (``induction/shifted_score``, max over heads and shifts,
    at shift ``induction_shift/k``)."""
    import torch

    with torch.no_grad():
        loss, acc, cache = masked_loss(model, batch)
    scores = attention_scores(cache, batch, model.n_layers)
    row = {"icl/loss": float(loss), "icl/acc": acc,
           "induction/score": float(scores["induction_L1"].max()),
           "prev_token/score": float(scores["prev_token_L0"].max())}
    k, h = np.unravel_index(np.argmax(scores["shifted_L1"]), scores["shifted_L1"].shape)
    row["induction/shifted_score"] = float(scores["shifted_L1"][k, h])
    row["induction_shift/k"] = int(SHIFTS[k])
    row.update({f"attn/induction_L1H{h}": float(v) for h, v in enumerate(scores["induction_L1"])})
    row.update({f"attn/prev_token_L0H{h}": float(v) for h, v in enumerate(scores["prev_token_L0"])})
    return row


# ---------------------------------------------------------------------------------------- circuits
def circuits(state: Mapping, n_layers: int, n_heads: int) -> dict[str, np.ndarray]:
    """Every head's W_QK and W_OV (d × d, float64), LayerNorm gain folded in, from a state dict.

    Names ``QK_L{l}H{h}`` and ``OV_L{l}H{h}``; row convention: score = x_q W_QK x_kᵀ, write = x W_OV.
    """
    out = {}
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        w = state[p + "ln1.w"].detach().double().cpu().numpy()                  # (d,)
        q, k = (state[p + f"attn.W_{n}"].detach().double().cpu().numpy() for n in ("Q", "K"))  # (H, d, E)
        v = state[p + "attn.W_V"].detach().double().cpu().numpy()               # (H, d, E)
        o = state[p + "attn.W_O"].detach().double().cpu().numpy()               # (H, E, d)
        for h in range(n_heads):
            out[f"QK_L{layer}H{h}"] = (w[:, None] * q[h]) @ (w[:, None] * k[h]).T  # (d, d)
            out[f"OV_L{layer}H{h}"] = (w[:, None] * v[h]) @ o[h]                 # (d, d)
    return out


def k_composition(qk: np.ndarray, ov: np.ndarray) -> float:
    """‖W_QK W_OVᵀ‖_F / (‖W_QK‖_F ‖W_OV‖_F): how much a later head's keys read an earlier head's output."""
    denom = np.linalg.norm(qk) * np.linalg.norm(ov)
    return float(np.linalg.norm(qk @ ov.T) / denom) if denom > 0 else 0.0


def circuit_measures(mats: Mapping[str, np.ndarray], previous: Mapping[str, np.ndarray] | None, top_k: int,
                     n_heads: int) -> dict[str, float]:
    """Effective rank of every circuit, subspace overlap with ``previous`` (1 when None), and the
    K-composition of layer 1's heads with layer 0."""
    from rnnautomata.icl import measures

    row = {}
    for name, m in mats.items():
        row[f"spectral/{name}"] = measures.effective_rank(measures.singular_values(m))
        row[f"stability/{name}"] = 1.0 if previous is None else measures.subspace_overlap(previous[name], m, top_k)
    for h in range(n_heads):
        row[f"composition/k_L1H{h}"] = max(k_composition(mats[f"QK_L1H{h}"], mats[f"OV_L0H{g}"]) for g in range(n_heads))
    return row


# ------------------------------------------------------------------------------------------ onset
def _rise_level(study: InductionStudy, fraction: float) -> float:
    chance = 1.0 / study.data.vocab_size
    return chance + fraction * (1 - chance)


def onset_summary(study: InductionStudy, rows: Sequence[Mapping]) -> dict:
    """The ICL onset of metric rows and, per measure, whether its fastest change falls in the rise.

    ``onset_step``: first step from which ``icl/acc`` stays ≥ half-way between chance and 1;
    ``rise_start`` / ``rise_end``: the same at 20 % and 80 % of the way (``rise_width`` between).
    Per measure: ``fastest_change_step`` (largest |Δ| per step between rows; for ``stability/*`` the
    smallest overlap), ``lag`` (that step − onset), ``in_rise`` (within the rise, ± one row), and
    ``rate_ratio``: mean |Δ|/step inside the rise over mean |Δ|/step outside it (> 1: it moves
    at the onset).
    """
    from rnnautomata.icl.grokking import jump_step

    steps = np.array([r["step"] for r in rows])
    acc = np.array([r["icl/acc"] for r in rows])
    onset = jump_step(steps, acc, _rise_level(study, 0.5))
    start = jump_step(steps, acc, _rise_level(study, 0.2))
    end = jump_step(steps, acc, _rise_level(study, 0.8))
    out: dict[str, Any] = {"onset_step": onset, "rise_start": start, "rise_end": end,
                           "rise_width": None if start is None or end is None else end - start, "measures": {}}
    ind = np.array([r["induction/score"] for r in rows])
    out["induction_half_step"] = jump_step(steps, ind, (ind[0] + ind[-1]) / 2) if ind[-1] > ind[0] else None
    if onset is None or start is None or end is None or len(steps) < 3:
        return out
    spacing = int(np.median(np.diff(steps)))                             # one row: eval_every, or checkpoint_every in track
    lo, hi = start - spacing, end + spacing
    mid = (steps[1:] + steps[:-1]) / 2                                   # a change belongs to the interval's middle
    inside = (mid >= lo) & (mid <= hi)
    keys = [k for k in rows[0] if k.split("/")[0] in ("induction", "prev_token", "spectral", "stability", "composition")]
    for key in keys:
        v = np.array([r[key] for r in rows], dtype=np.float64)
        if key.startswith("stability/"):
            rate = (1 - v[1:]) / np.diff(steps)
            fastest = int(steps[1:][np.argmax(1 - v[1:])])
        else:
            rate = np.abs(np.diff(v)) / np.diff(steps)
            fastest = int(mid[np.argmax(rate)])
        outside = rate[~inside].mean() if (~inside).any() else float("nan")
        out["measures"][key] = {
            "fastest_change_step": fastest, "lag": fastest - onset, "in_rise": bool(lo <= fastest <= hi),
            "rate_ratio": float(rate[inside].mean() / outside) if inside.any() and outside > 0 else None,
        }
    return out


# ------------------------------------------------------------------------------------------ train
def run_study(study: InductionStudy, out: Path, device: str = "cpu", progress: bool = True, render: bool = True) -> dict:
    """Train (resuming a finished prefix), write metrics.jsonl, checkpoints, summary.json, figures."""
    import torch

    from rnnautomata.data.induction import make_batch
    from rnnautomata.icl.study import full_batch_descent, model_tensors
    from rnnautomata.runs import RunDir, atomic_write_json, load_checkpoint

    run = RunDir(Path(out))
    t, n_layers, n_heads = study.train, study.model.n_layers, study.model.n_heads
    model = build_model(study, device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    test = fixed_test_batch(study, device)
    previous: dict[str, Any] = {}

    def train_loss(step):  # the batch depends only on (seed, step): a resumed run sees the same batches
        batch = _tensors(make_batch(study.data, np.random.default_rng([t.seed, 2, step]), t.batch_size), device)
        logits = model(batch["tokens"])[batch["mask"]]                # (M, V)
        target = batch["target"][batch["mask"]]                         # (M,)
        return torch.nn.functional.cross_entropy(logits, target), (logits, target)

    def record(step, loss, forward):
        logits, target = forward
        mats = circuits(model.state_dict(), n_layers, n_heads)
        if "mats" not in previous and step > 0:  # resumed: the previous row's weights are the last checkpoint's
            last = max(s for s in run.steps() if s < step)
            prior = model_tensors(load_checkpoint(run.checkpoint_path(last))[0])
            previous["mats"] = circuits(prior, n_layers, n_heads)
        row = {"step": step, "train/loss": loss.item(), "train/acc": float((logits.argmax(-1) == target).float().mean())}
        row.update(evaluate(model, test))
        row.update(circuit_measures(mats, previous.get("mats"), study.measures.top_k, n_heads))
        previous["mats"] = mats
        return row

    with run.locked():
        rows = full_batch_descent(run, study, device, model, opt, train_loss, record,
                                  lambda loss: {"kind": study.kind}, progress)
        run.write_manifest(status="complete", steps=run.steps())
        summary = _summary(study, rows)
        atomic_write_json(run.root / "summary.json", summary)
    track_run(run.root, device)   # measures.json: the same measures per checkpoint, overlap with the final one
    if render:
        render_run(run.root)
    return summary


def _summary(study: InductionStudy, rows: Sequence[Mapping]) -> dict:
    last = rows[-1]
    final = {k: last[k] for k in ("icl/acc", "icl/loss", "train/loss", "induction/score", "induction/shifted_score",
                                  "induction_shift/k", "prev_token/score")}
    return {"study": study.name, "task": study.data.task, "final": final, **onset_summary(study, rows)}


# ----------------------------------------------------------------------------------- track, render
def read_study(run_dir: Path) -> InductionStudy:
    """The study a run folder was trained with (its study.toml)."""
    path = Path(run_dir) / "study.toml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no study.toml; it was not written by `rnnautomata run`")
    try:
        return load_study({k: v for k, v in tomllib.loads(path.read_text()).items() if k != "kind"})
    except (tomllib.TOMLDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path} is not a valid induction study ({err})") from None


def track_run(run_dir: Path, device: str = "cpu") -> dict:
    """Re-evaluate every checkpoint (test set, attention scores, circuits); write measures.json.

    Subspace stability here compares consecutive *checkpoints* (metrics.jsonl compares consecutive rows).
    """
    from rnnautomata.icl import measures
    from rnnautomata.loop import load_weights
    from rnnautomata.runs import RunDir, atomic_write_json

    run = RunDir(Path(run_dir))
    study = read_study(run.root)
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.root} has no checkpoints yet; run `rnnautomata run` first")
    model, test = build_model(study, device), fixed_test_batch(study, device)
    n_layers, n_heads = study.model.n_layers, study.model.n_heads
    rows, mats = [], []
    for s in steps:
        state = load_weights(run, s, model)
        mats.append(circuits(state, n_layers, n_heads))
        rows.append({"step": s, **evaluate(model, test),
                     **circuit_measures(mats[-1], mats[-2] if len(mats) > 1 else None, study.measures.top_k, n_heads)})
    import torch

    from rnnautomata.icl.grokking import jump_step

    as_states = [{k: torch.as_tensor(v) for k, v in m.items()} for m in mats]
    spec = measures.spectral_dynamics(as_states, rel_tol=study.measures.rel_tol)
    final = measures.subspace_stability(as_states, study.measures.top_k, reference="final")
    out = {"steps": steps, "rows": rows,
           "rank": {n: v["rank"].tolist() for n, v in spec.items()},
           "singular_values": {n: v["singular_values"][:, : study.measures.top_k * 2].tolist() for n, v in spec.items()},
           "subspace_overlap_with_final": {n: v.tolist() for n, v in final.items()},
           # first checkpoint from which the overlap with the final subspace stays half-way from its start to 1
           "overlap_with_final_half_step": {n: jump_step(np.array(steps), v, (v[0] + 1) / 2) for n, v in final.items()},
           **onset_summary(study, rows)}
    atomic_write_json(run.root / "measures.json", out)
    return out


def render_run(run_dir: Path) -> list[Path]:
    """figures/induction.{png,svg}: ICL loss and accuracy, attention scores, effective ranks and
    subspace stability of the circuits, on one step axis with the onset and the rise marked."""
    from rnnautomata import plotting
    from rnnautomata.icl.figures import save_figure
    from rnnautomata.runs import RunDir

    run = RunDir(Path(run_dir))
    study = read_study(run.root)
    rows = run.read_metrics()
    if not rows:
        raise CheckpointError(f"{run.root} has no metrics yet; run `rnnautomata run` first")
    onset = onset_summary(study, rows)
    steps = np.array([r["step"] for r in rows])

    def series(key):
        return np.array([r[key] for r in rows])

    tracked = json.loads((run.root / "measures.json").read_text()) if (run.root / "measures.json").is_file() else None
    fig, axes = plotting.subplots(5 if tracked else 4, 1, figsize=(7.5, 12.5 if tracked else 10), sharex=True)
    ax = axes[0]
    ax.plot(steps, series("icl/acc"), color="tab:blue", label="in-context accuracy (predictable positions)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    twin = ax.twinx()
    twin.semilogy(steps, series("icl/loss"), color="tab:red", lw=1, label="in-context loss")
    twin.set_ylabel("cross-entropy", color="tab:red")
    ax.legend(loc="center right", fontsize=7)
    ax = axes[1]
    for key in sorted(k for k in rows[0] if k.startswith("attn/")):
        ax.plot(steps, series(key), lw=1.2, ls="-" if "induction" in key else "--", label=key[len("attn/"):])
    if "induction/shifted_score" in rows[0]:   # absent from runs made before it existed
        ax.plot(steps, series("induction/shifted_score"), color="k", lw=0.8, ls=":",
                label=f"shifted induction (best k; final k = {rows[-1]['induction_shift/k']})")
    ax.set_ylabel("attention score")
    ax.legend(fontsize=7, ncol=2)
    for ax, prefix, label in ((axes[2], "spectral/", "effective rank"), (axes[3], "stability/", f"top-{study.measures.top_k} overlap\nwith previous row")):
        for key in sorted(k for k in rows[0] if k.startswith(prefix)):
            name = key[len(prefix):]
            ax.plot(steps, series(key), lw=1.2, ls="-" if name.startswith("QK") else "--", label=name)
        ax.set_ylabel(label)
        ax.legend(fontsize=6, ncol=4)
    if tracked:
        for name, v in sorted(tracked["subspace_overlap_with_final"].items()):
            axes[4].plot(tracked["steps"], v, lw=1.2, ls="-" if name.startswith("QK") else "--", marker=".", ms=3, label=name)
        axes[4].set_ylabel(f"top-{study.measures.top_k} overlap\nwith final checkpoint")
        axes[4].legend(fontsize=6, ncol=4)
    axes[-1].set_xlabel("step")
    for ax in axes:
        if onset["onset_step"] is not None:
            ax.axvline(onset["onset_step"], color="k", lw=0.8)
        if onset["rise_start"] is not None and onset["rise_end"] is not None:
            ax.axvspan(onset["rise_start"], onset["rise_end"], color="grey", alpha=0.15, lw=0)
    d = study.data
    axes[0].set_title(f"{study.name}: {d.task}, V={d.vocab_size}, T={d.seq_len}; ICL onset at step {onset['onset_step']} "
                      f"(rise {onset['rise_start']}–{onset['rise_end']})", fontsize=9)
    fig.tight_layout()
    names = save_figure(fig, run.figures_dir / "induction")
    names += _attention_figure(study, run, [s for s in (onset["rise_start"], onset["rise_end"]) if s is not None])
    return [run.figures_dir / n for n in names]


def _attention_figure(study: InductionStudy, run, marks: Sequence[int]) -> list[str]:
    """figures/attention.{png,svg}: every head's pattern on one test sequence, at the first
    checkpoint, the checkpoints nearest the rise's ends, and the last."""
    import torch

    from rnnautomata import plotting
    from rnnautomata.icl.figures import save_figure
    from rnnautomata.icl.study import model_tensors
    from rnnautomata.runs import load_checkpoint

    saved = run.steps()
    if not saved:
        return []
    picks = sorted({saved[0], *(min(saved, key=lambda s: abs(s - m)) for m in marks), saved[-1]})
    model, test = build_model(study), fixed_test_batch(study)
    one = {k: v[:1] for k, v in test.items()}
    n_layers, n_heads = study.model.n_layers, study.model.n_heads
    fig, axes = plotting.subplots(n_layers * n_heads, len(picks), figsize=(2.2 * len(picks), 2.2 * n_layers * n_heads),
                             squeeze=False)
    for j, step in enumerate(picks):
        model.load_state_dict(model_tensors(load_checkpoint(run.checkpoint_path(step))[0]))
        with torch.no_grad():
            _, cache = model.run_with_cache(one["tokens"])
        for layer in range(n_layers):
            for h in range(n_heads):
                ax = axes[layer * n_heads + h, j]
                ax.imshow(cache[f"blocks.{layer}.attn.hook_pattern"][0, h].numpy(), cmap="viridis", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(f"L{layer}H{h}\nquery", fontsize=8)
                if layer == h == 0:
                    ax.set_title(f"step {step}", fontsize=8)
    fig.suptitle("attention patterns on one test sequence (x: key, y: query; row/column 0 = BOS)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, run.figures_dir / "attention")



class InductionKind(StudyKind):
    name = "induction"
    description = "attention-only transformer on in-context copying: ICL onset vs induction score, spectral rank, subspace stability"

    def load(self, raw: dict) -> InductionStudy:
        return load_study({k: v for k, v in raw.items() if k != "kind"})

    def run(self, study, out, *, device=None, progress=True, render=True) -> dict:
        summary = run_study(study, Path(out), device or "cpu", progress, render)
        if render:
            self.report(Path(out))   # the measures page (StudyKind.report)
        return summary

    def track(self, run_dir, *, device=None, progress=True, **options) -> dict:
        out = track_run(Path(run_dir), device or "cpu")
        return {k: v for k, v in out.items() if k not in ("rows", "singular_values", "rank", "subspace_overlap_with_final",
                                                          "measures")}

    def render(self, run_dir, steps=None) -> list[Path]:
        return render_run(Path(run_dir))

    def summarise(self, run_dir) -> dict:
        path = Path(run_dir) / "summary.json"
        if not path.is_file():
            raise CheckpointError(f"{run_dir} has no summary.json; finish it with `rnnautomata run`")
        s = json.loads(path.read_text())
        flat = {f"final_{k.replace('/', '_')}": v for k, v in s["final"].items()}
        flat.update({k: s.get(k) for k in ("onset_step", "rise_start", "rise_end", "rise_width", "induction_half_step")})
        for key in ("induction/score", "prev_token/score"):
            m = s["measures"].get(key)
            flat[f"{key.split('/')[0]}_fastest_change_step"] = None if m is None else m["fastest_change_step"]
        return flat

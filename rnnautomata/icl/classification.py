"""In-context vs in-weights classification (Nguyen & Reddy 2024, arXiv 2412.00104), re-implemented.

The task. K items μ_k ~ N(0, I/D), each with a fixed label ℓ_k ∈ {0..L−1} (balanced, shuffled).
A sequence is N context tokens and a query token; a token is x ⊕ onehot(ℓ) with
x = (μ + ε η) / √(1 + ε²), η ~ N(0, I/D) fresh per token, and the query's label part zeroed.
The target is the query's label.

- training sequence: N + 1 items drawn uniformly with replacement from the K items, the last being
  the query. With probability ``p_bursty`` (1 in the paper) the sequence is *bursty*: if the query's
  item does not occur among the N context items, the query is replaced by a uniformly chosen context
  item, so the answer is always in the context — and also always in the weights.
- ICL test (``acc/icl``): N fresh items ~ N(0, I/D) with fresh uniform labels, the query a copy of
  one of them (new noise). Only reading the label off the context solves it.
- IWL test (``acc/iwl``): N + 1 *distinct* trained items with their trained labels, the query the
  last; its item is not in the context, so only memorised labels solve it.

Example (D = 2, L = 2, N = 2): items μ_0 → 1, μ_1 → 0, ...; a bursty training sequence
``[x_0 ⊕ (0,1), x_1 ⊕ (1,0), x_0' ⊕ (0,0)]`` has target 1.

The model (``AttentionMLP``): LayerNorm over the D + L input features; one causal softmax
attention head, no positional encoding, scale 1, q/k/v maps (D+L)×(D+L) without bias; the residual
sum query + attention output at the query token goes through a 3-layer ReLU MLP to one logit
(L = 2; logistic loss) or L logits (cross entropy). SGD, weight decay on attention and LayerNorm only.

``t_ICL`` is the first step at which ``acc/icl`` reaches half-way between chance (1/L) and 1 and
stays there (``grokking.jump_step``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rnnautomata.errors import CheckpointError
from rnnautomata.icl.config import ICLClassificationStudy
from rnnautomata.icl.threshold import fit_threshold  # re-exported: K* lives with the threshold analysis
from rnnautomata.runs import RunDir, atomic_write_json

__all__ = ["ItemClassification", "Batch", "AttentionMLP", "classification_loss", "accuracy",
           "run_classification", "track_classification", "icl_level", "fit_threshold",
           "TRANSIENT_DROP", "SWEEP_MEASURES", "summarise_run", "sweep_figures"]

TRANSIENT_DROP = 0.1  # ICL is transient: it reached the t_ICL level, then fell more than this below its peak
#: the panels of a sweep's phase diagram (columns of aggregate.csv: medians and fractions over seeds)
SWEEP_MEASURES = (
    ("acc_icl_median", "final ICL accuracy (median)", False),
    ("acc_iwl_median", "final IWL accuracy (median)", False),
    ("fraction_icl_appeared", "fraction where ICL appeared", False),
    ("t_icl_median", "t_ICL, steps (median over seeds with ICL)", False),
    ("fraction_icl_transient", "fraction with transient ICL", False),
    ("peak_icl_median", "peak ICL accuracy (median)", False),
)


class Batch:
    """``tokens (B, N + 1, D + L)`` float32, ``target (B,)`` int64 labels of the queries."""

    def __init__(self, tokens: torch.Tensor, target: torch.Tensor) -> None:
        self.tokens, self.target = tokens, target


class ItemClassification:
    """The items, their labels and the three samplers (training, ICL test, IWL test).

    ``rng`` (numpy Generator) draws the items and their labels once; every sampler takes its own rng.
    """

    def __init__(self, x_dim: int, n_items: int, n_labels: int, n_context: int, noise: float,
                 p_bursty: float, rng: np.random.Generator) -> None:
        if n_labels < 2 or n_items < n_labels:
            raise ValueError(f"need n_labels ≥ 2 and n_items ≥ n_labels (got L = {n_labels}, K = {n_items})")
        self.x_dim, self.n_items, self.n_labels, self.n_context = x_dim, n_items, n_labels, n_context
        self.noise, self.p_bursty = noise, p_bursty
        self.items = rng.standard_normal((n_items, x_dim)) / math.sqrt(x_dim)        # (K, D)
        self.labels = rng.permutation(np.arange(n_items) % n_labels)                  # (K,)

    def _tokens(self, means: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Batch:
        """means (B, N+1, D), labels (B, N+1) -> tokens with noise, query label zeroed."""
        x = (means + self.noise * rng.standard_normal(means.shape) / math.sqrt(self.x_dim)) / math.sqrt(1 + self.noise ** 2)
        onehot = np.eye(self.n_labels)[labels]                                          # (B, N+1, L)
        onehot[:, -1] = 0.0
        tokens = np.concatenate([x, onehot], axis=-1)                                   # (B, N+1, D+L)
        return Batch(torch.as_tensor(tokens, dtype=torch.float32), torch.as_tensor(labels[:, -1], dtype=torch.int64))

    def train_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.integers(self.n_items, size=(batch_size, self.n_context + 1))          # (B, N+1)
        bursty = rng.random(batch_size) < self.p_bursty
        present = (idx[:, :-1] == idx[:, -1:]).any(axis=1)
        fix = np.nonzero(bursty & ~present)[0]
        pick = rng.integers(self.n_context, size=len(fix))
        idx[fix, -1] = idx[fix, pick]
        return self._tokens(self.items[idx], self.labels[idx], rng)

    def icl_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
        n = self.n_context
        means = rng.standard_normal((batch_size, n + 1, self.x_dim)) / math.sqrt(self.x_dim)
        labels = rng.integers(self.n_labels, size=(batch_size, n + 1))
        pick = rng.integers(n, size=batch_size)
        rows = np.arange(batch_size)
        means[:, -1], labels[:, -1] = means[rows, pick], labels[rows, pick]
        return self._tokens(means, labels, rng)

    def iwl_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
        if self.n_items <= self.n_context:
            raise ValueError(f"the IWL test needs n_items > n_context (got K = {self.n_items}, N = {self.n_context})")
        # N + 1 distinct items per row: the first N + 1 of a random permutation (argsort of uniforms)
        idx = np.argsort(rng.random((batch_size, self.n_items)), axis=1)[:, : self.n_context + 1]
        return self._tokens(self.items[idx], self.labels[idx], rng)


class AttentionMLP(torch.nn.Module):
    """LayerNorm → one causal softmax attention head (scale 1, no positions) → query + attention → MLP."""

    def __init__(self, x_dim: int, n_labels: int, mlp_width: int = 512, layer_norm: bool = True,
                 generator: torch.Generator | None = None, device: str = "cpu") -> None:
        super().__init__()
        width = x_dim + n_labels
        self.n_labels = n_labels
        self.norm = torch.nn.LayerNorm(width, device=device) if layer_norm else torch.nn.Identity()
        self.query = torch.nn.Linear(width, width, bias=False, device=device)
        self.key = torch.nn.Linear(width, width, bias=False, device=device)
        self.value = torch.nn.Linear(width, width, bias=False, device=device)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, mlp_width, device=device), torch.nn.ReLU(),
            torch.nn.Linear(mlp_width, mlp_width, device=device), torch.nn.ReLU(),
            torch.nn.Linear(mlp_width, 1 if n_labels == 2 else n_labels, device=device))
        for m in self.modules():       # PyTorch's default uniform init, drawn from the given generator
            if isinstance(m, torch.nn.Linear):
                bound = 1 / math.sqrt(m.in_features)
                torch.nn.init.uniform_(m.weight, -bound, bound, generator=generator)
                if m.bias is not None:
                    torch.nn.init.uniform_(m.bias, -bound, bound, generator=generator)

    def attention_params(self) -> list[torch.nn.Parameter]:
        """The parameters that get weight decay: attention maps and LayerNorm."""
        return [*self.norm.parameters(), *self.query.parameters(), *self.key.parameters(), *self.value.parameters()]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N+1, D+L) -> logits (B,) for L = 2, else (B, L). Only the query's output is
        needed, and under the causal mask the query (last token) sees every token, itself included."""
        z = self.norm(tokens)                                        # (B, T, W)
        q = self.query(z[:, -1])                                     # (B, W)
        k, v = self.key(z), self.value(z)                            # (B, T, W)
        attn = torch.softmax(torch.einsum("bw,btw->bt", q, k), -1)   # (B, T), scale 1
        h = z[:, -1] + torch.einsum("bt,btw->bw", attn, v)           # (B, W) residual
        out = self.mlp(h)                                            # (B, 1 or L)
        return out.squeeze(-1) if self.n_labels == 2 else out


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logistic loss on one logit (L = 2: label 1 ↔ logit > 0), else cross entropy."""
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return F.cross_entropy(logits, target)


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Share of queries whose predicted label (logit > 0, or argmax) is the target."""
    pred = (logits > 0).long() if logits.dim() == 1 else logits.argmax(-1)
    return float((pred == target).float().mean())


def icl_level(n_labels: int) -> float:
    """Half-way between chance and perfect accuracy: the level that defines t_ICL."""
    return (1 + 1 / n_labels) / 2


def _task(study: ICLClassificationStudy) -> ItemClassification:
    d = study.data
    return ItemClassification(d.x_dim, d.n_items, d.n_labels, d.n_context, d.noise, d.p_bursty,
                              np.random.default_rng([study.train.seed, 0]))


def _model(study: ICLClassificationStudy, device: str) -> AttentionMLP:
    gen = torch.Generator(device="cpu").manual_seed(study.train.seed)
    model = AttentionMLP(study.data.x_dim, study.data.n_labels, study.model.mlp_width, study.model.layer_norm,
                         generator=gen)
    return model.to(device)


def _evaluate(model: AttentionMLP, batch: Batch) -> tuple[float, float]:
    logits = model(batch.tokens)
    return accuracy(logits, batch.target), float(classification_loss(logits, batch.target))


def run_classification(study: ICLClassificationStudy, out: Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train by SGD on fresh bursty batches; record acc/icl, acc/iwl; write summary.json."""
    from rnnautomata.icl.grokking import jump_step
    from rnnautomata.icl.study import full_batch_descent

    run = RunDir(out)
    t = study.train
    task = _task(study)
    model = _model(study, device)
    decayed = {id(p) for p in model.attention_params()}
    opt = torch.optim.SGD([
        {"params": model.attention_params(), "weight_decay": t.weight_decay},
        {"params": [p for p in model.parameters() if id(p) not in decayed], "weight_decay": 0.0},
    ], lr=t.lr)
    test_icl = task.icl_batch(study.data.n_test, np.random.default_rng([t.seed, 1]))
    test_iwl = task.iwl_batch(study.data.n_test, np.random.default_rng([t.seed, 2]))
    test_icl = Batch(test_icl.tokens.to(device), test_icl.target.to(device))
    test_iwl = Batch(test_iwl.tokens.to(device), test_iwl.target.to(device))

    def train_loss(step):  # each step's batch depends only on (seed, step): a resumed run sees the same batches
        batch = task.train_batch(t.batch_size, np.random.default_rng([t.seed, 3, step]))
        logits, target = model(batch.tokens.to(device)), batch.target.to(device)
        return classification_loss(logits, target), (logits, target)

    def record(step, loss, forward):
        logits, target = forward
        acc_icl, loss_icl = _evaluate(model, test_icl)
        acc_iwl, loss_iwl = _evaluate(model, test_iwl)
        return {"step": step, "train/loss": loss.item(), "train/acc": accuracy(logits, target),
                "acc/icl": acc_icl, "acc/iwl": acc_iwl, "loss/icl": loss_icl, "loss/iwl": loss_iwl}

    records = full_batch_descent(run, study, device, model, opt, train_loss, record,
                                 lambda loss: {"kind": study.kind}, progress)
    run.write_manifest(status="complete", steps=run.steps())
    summary = summarise(study, records, jump_step)
    atomic_write_json(run.root / "summary.json", summary)
    _figure(study, records, run)
    return summary


def summarise(study: ICLClassificationStudy, records: list[dict], jump_step) -> dict:
    """Final accuracies, t_ICL and t_IWL (half-way level, reached and kept), peak ICL, transience."""
    steps = np.array([r["step"] for r in records])
    icl = np.array([r["acc/icl"] for r in records])
    iwl = np.array([r["acc/iwl"] for r in records])
    level = icl_level(study.data.n_labels)
    peak = int(np.argmax(icl))
    return {
        "study": study.name, "n_items": study.data.n_items, "n_context": study.data.n_context,
        "level": level, "chance": 1 / study.data.n_labels,
        "final": {k: records[-1][k] for k in ("acc/icl", "acc/iwl", "loss/icl", "loss/iwl", "train/loss")},
        "t_icl": jump_step(steps, icl, level), "t_iwl": jump_step(steps, iwl, level),
        "peak_icl": {"acc": float(icl[peak]), "step": int(steps[peak])},
        # reached the level at some checkpoint, then fell more than TRANSIENT_DROP below its peak
        "icl_transient": bool(icl.max() >= level and icl.max() - icl[-1] > TRANSIENT_DROP),
    }


def summarise_run(run_dir: str | Path) -> dict:
    """One finished run's sweep row: final ``acc_icl`` / ``acc_iwl`` / ``train_loss``, ``t_icl`` and
    ``t_iwl`` (None: never reached and kept), ``icl_appeared`` (``acc/icl`` reached the t_ICL level
    at some checkpoint), ``icl_transient`` (it appeared, then fell by more than
    :data:`TRANSIENT_DROP` below its peak), ``peak_icl`` and ``peak_icl_step``. From the run's
    study.toml and metrics.jsonl.

    Raises
    ------
    CheckpointError if the folder holds no icl_classification run with metrics.
    """
    from rnnautomata.icl.grokking import jump_step

    run = RunDir(Path(run_dir))
    study = _read_classification_study(run)
    records = run.read_metrics()
    if not records:
        raise CheckpointError(f"{run.root} has no metrics yet; run `rnnautomata run` first")
    s = summarise(study, records, jump_step)
    return {
        "acc_icl": s["final"]["acc/icl"], "acc_iwl": s["final"]["acc/iwl"], "train_loss": s["final"]["train/loss"],
        "t_icl": s["t_icl"], "t_iwl": s["t_iwl"],
        "icl_appeared": bool(s["peak_icl"]["acc"] >= s["level"]), "icl_transient": s["icl_transient"],
        "peak_icl": s["peak_icl"]["acc"], "peak_icl_step": s["peak_icl"]["step"],
    }


def _read_classification_study(run: RunDir) -> ICLClassificationStudy:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    from rnnautomata.errors import ConfigError
    from rnnautomata.icl.config import study_from_dict

    if not run.study_path.is_file():
        raise CheckpointError(f"{run.root} has no study.toml; it was not written by `rnnautomata run`")
    try:
        study = study_from_dict(tomllib.loads(run.study_path.read_text()))
    except (tomllib.TOMLDecodeError, ConfigError) as err:
        raise CheckpointError(f"{run.study_path} is not a valid study ({err})") from None
    if not isinstance(study, ICLClassificationStudy):
        raise CheckpointError(f"{run.root} is a {study.kind!r} run, not icl_classification")
    return study


def sweep_figures(sweep_dir: str | Path, run_dirs, n_boot: int = 200) -> list[Path]:
    """K* across a sweep's finished runs: ``sweep_dir/threshold.json`` (:func:`rnnautomata.icl.threshold.
    analyse_threshold`: K* per N with bootstrap spread and per-seed fits, the log K*–log N slope beside
    the paper's 1/0.7, bimodality near K*) and ``figures/icl_threshold.{png,svg}``. Nothing when
    fewer than two values of K were run. The bootstrap's generator is seeded (0): reruns agree."""
    from rnnautomata.icl.threshold import analyse_threshold, draw_threshold

    rows = []
    for d in run_dirs:
        run = RunDir(Path(d))
        study = _read_classification_study(run)
        records = run.read_metrics()
        if records:
            rows.append({"dir": str(Path(d)), "n_items": study.data.n_items, "n_context": study.data.n_context,
                         "seed": study.train.seed, "acc_icl": records[-1]["acc/icl"], "chance": 1 / study.data.n_labels})
    if len({r["n_items"] for r in rows}) < 2:
        return []
    analysis = analyse_threshold(rows, np.random.default_rng(0), n_boot)
    root = Path(sweep_dir)
    written = [atomic_write_json(root / "threshold.json", {"runs": rows, **analysis})]
    return written + draw_threshold(rows, analysis, root / "figures" / "icl_threshold")


def _figure(study: ICLClassificationStudy, records: list[dict], run: RunDir) -> None:
    from rnnautomata import plotting
    from rnnautomata.icl import figures

    steps = [r["step"] for r in records]
    fig, ax = plotting.subplots(figsize=(6, 3.5))
    ax.plot(steps, [r["acc/icl"] for r in records], label="ICL test (novel items)")
    ax.plot(steps, [r["acc/iwl"] for r in records], label="IWL test (trained items, not in context)")
    ax.axhline(1 / study.data.n_labels, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="SGD step", ylabel="accuracy", ylim=(0, 1.02),
           title=f"{study.name}: K={study.data.n_items}, N={study.data.n_context}, D={study.data.x_dim}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures.save_figure(fig, run.figures_dir / "accuracy")


def track_classification(study: ICLClassificationStudy, run: RunDir) -> dict:
    """Re-evaluate every checkpoint on the fixed ICL and IWL test sets; write measures.json."""
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.root} has no checkpoints yet; run `rnnautomata run` first")
    from rnnautomata.loop import load_weights

    task = _task(study)
    test_icl = task.icl_batch(study.data.n_test, np.random.default_rng([study.train.seed, 1]))
    test_iwl = task.iwl_batch(study.data.n_test, np.random.default_rng([study.train.seed, 2]))
    model = _model(study, "cpu")
    rows = []
    for s in steps:
        load_weights(run, s, model)
        with torch.no_grad():
            rows.append({"step": s, "acc/icl": _evaluate(model, test_icl)[0], "acc/iwl": _evaluate(model, test_iwl)[0]})
    out = {"steps": steps, "acc/icl": [r["acc/icl"] for r in rows], "acc/iwl": [r["acc/iwl"] for r in rows]}
    atomic_write_json(run.root / "measures.json", out)
    return out

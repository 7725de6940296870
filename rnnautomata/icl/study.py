"""The "icl" study (linear attention on in-context regression): its run and measures; and
``run_study`` / ``track_run``, which run and track any icl-family study through its kind
(:mod:`rnnautomata.studies`). The descent loop they share is :func:`rnnautomata.loop.full_batch_descent`.

    study = load_study(raw_toml_dict)                 # validate (ConfigError on problems)
    summary = run_study(study, Path("runs/x"), "cpu") # train, checkpoints, theory.json, figures
    measures = track_run(Path("runs/x"))              # measures.json + figures over checkpoints

An ICL run directory holds study.toml, manifest.json, metrics.jsonl, checkpoints/step_XXXXXX.safetensors,
theory.json (theory vs simulation: drop time, plateaus, mode order, which algorithm), measures.json
and figures/ (loss with theory overlaid, modes, algorithms, spectral rank and subspace stability).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rnnautomata.data.icl import InContextRegression, make_covariance
from rnnautomata.errors import CheckpointError, ConfigError
from rnnautomata.icl import algorithms, figures, measures, theory
from rnnautomata.icl.config import GrokkingStudy, ICLClassificationStudy, ICLStudy, study_from_dict
from rnnautomata.loop import full_batch_descent, load_weights, model_tensors, open_run, record_checkpoint  # re-exported
from rnnautomata.models.linear_attention import LinearAttention, token_moments
from rnnautomata.runs import RunDir, atomic_write_json, atomic_write_text

__all__ = ["load_study", "run_study", "track_run", "read_study", "run_icl", "track_icl", "build_icl", "ICLSetup", "open_run", "record_checkpoint", "model_tensors", "full_batch_descent"]


def load_study(raw: dict) -> ICLStudy | GrokkingStudy:
    """Validate a parsed study TOML (overrides already applied)."""
    return study_from_dict(raw)


def run_study(study: ICLStudy | GrokkingStudy | ICLClassificationStudy, out_dir: Path, device: str = "cpu",
              progress: bool = True) -> dict:
    """Train the study's model, write the run directory, and return a summary dict: the run of
    its kind (``rnnautomata.studies.get_kind(study.kind).run``).

    Raises CheckpointError if another process is training into ``out_dir``."""
    from rnnautomata.studies import get_kind

    return get_kind(study.kind).run(study, Path(out_dir), device=device, progress=progress)


def track_run(out_dir: Path) -> dict:
    """Compute the measures over a finished run's checkpoints; write measures.json and figures
    (the ``track`` of the run's kind)."""
    from rnnautomata.studies import run_kind

    return run_kind(out_dir).track(Path(out_dir))


def read_study(run: RunDir) -> ICLStudy | GrokkingStudy | ICLClassificationStudy:
    """The study of an icl / grokking / icl_classification run folder, from its study.toml."""
    if not run.study_path.is_file():
        raise CheckpointError(f"{run.root} has no study.toml; it was not written by `rnnautomata run`")
    try:
        return study_from_dict(tomllib.loads(run.study_path.read_text()))
    except (tomllib.TOMLDecodeError, ConfigError) as err:
        raise CheckpointError(f"{run.study_path} is not a valid icl/grokking study ({err})") from None


# --------------------------------------------------------------------------------------------- ICL
class ICLSetup:
    """Everything a run derives from its study and seed: Λ, the task, train/test data, the model."""

    def __init__(self, study: ICLStudy, device: str = "cpu") -> None:
        d, m, t = study.data, study.model, study.train
        rng = np.random.default_rng(t.seed)
        self.covariance = make_covariance(d.x_dim, d.spectrum, rng, d.rotate)
        pool = rng.standard_normal((d.task_pool, d.x_dim)) if d.task_pool is not None else None
        self.task = InContextRegression(self.covariance, d.n_context, d.noise_std, pool)
        self.train = self.task.sample(d.n_train, rng, whiten_tasks=d.whiten_tasks, device=device)
        self.test = self.task.sample(d.n_test, rng, device=device)
        self.context_scale = 1.0 / d.n_context if m.normalize_context else 1.0
        self.device = device
        self.study = study
        self.moments = theory.moments(self.covariance, d.n_context, d.noise_std)

    def new_model(self) -> LinearAttention:
        m, t = self.study.model, self.study.train
        gen = torch.Generator(device=self.device).manual_seed(t.seed)
        return LinearAttention(self.study.data.x_dim, m.n_heads, m.parametrization, m.rank, m.init_scale,
                               self.context_scale, m.init_in_subspace, generator=gen, device=self.device)

    def modes(self, gamma: np.ndarray) -> np.ndarray:
        """Diagonal of Γ in Λ's eigenbasis (descending λ): κ_d, (..., D)."""
        e = self.moments.eigvecs
        return np.einsum("id,...ij,jd->...d", e, gamma, e)


def build_icl(study: ICLStudy, device: str = "cpu") -> ICLSetup:
    """The run's deterministic setup (same study and seed ⇒ same data and init)."""
    return ICLSetup(study, device)


def _suite_predictions(setup: ICLSetup) -> dict[str, torch.Tensor]:
    suite = algorithms.predictor_suite(setup.covariance, setup.study.data.noise_std)
    return {name: f(setup.test).float() for name, f in suite.items()}


def run_icl(study: ICLStudy, out: Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train a linear-attention ICL study into ``out`` (theory first, from the same initial weights); theory.json."""
    run = RunDir(out)
    setup = build_icl(study, device)
    model = setup.new_model()
    t = study.train
    # theory first, from the very same initial weights (infinite-data trajectory, same lr)
    pop = theory.population_descent(model, setup.covariance, study.data.n_context, t.lr, t.epochs,
                                     record_every=t.eval_every, noise_std=study.data.noise_std)
    zz, z_q = token_moments(setup.train.tokens), setup.train.tokens[:, -1, :]
    zz_test, zq_test = token_moments(setup.test.tokens), setup.test.tokens[:, -1, :]
    suite = _suite_predictions(setup)
    opt = torch.optim.SGD(model.parameters(), lr=t.lr)
    def train_loss(step):
        return ((model.forward_moments(zz, z_q) - setup.train.target) ** 2).mean(), None

    def record(step: int, loss: torch.Tensor, _) -> dict:
        pred_test = model.forward_moments(zz_test, zq_test)
        gamma = model.effective_matrix().double().cpu().numpy()
        rec = {"step": step, "train/loss": loss.item(),
               "test/loss": float(((pred_test - setup.test.target) ** 2).mean()),
               "theory/loss": float(pop.loss[step // t.eval_every])}
        rec.update({f"modes/kappa_{d + 1}": float(k) for d, k in enumerate(setup.modes(gamma))})
        rec.update({f"algo/{k}": v for k, v in measures.which_algorithm(pred_test, suite, setup.test.target).items()})
        return rec

    records = full_batch_descent(run, study, device, model, opt, train_loss, record,
                                 lambda loss: {"kind": "icl", "loss": repr(loss.item())}, progress)
    summary = _icl_theory_summary(setup, records, pop)
    atomic_write_json(run.root / "theory.json", summary)
    if "plateaus" in summary:
        atomic_write_text(run.root / "plateaus.md", _plateau_table(summary))
    _icl_figures(setup, records, pop, summary, run)
    run.write_manifest(status="complete", steps=run.steps())
    track_icl(study, run)   # measures.json and figures/measures.* (spectral rank, subspace stability)
    return summary


def _plateau_table(summary: dict) -> str:
    """theory.json's plateaus as a Markdown table."""
    lines = ["| k | step | train loss | theory L_k | PCR-k loss | closest PCR | dist. PCR-k | dist. attention-PCR-k |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["plateaus"]:
        lines.append(f"| {r['k']} | {r['step']} | {r['train_loss']:.4f} | {r['theory_L_k']:.4f} | {r['pcr_k_loss']:.4f} "
                     f"| {r['closest_pcr']} | {r['distance_to_pcr_k']:.4f} | {r['distance_to_attention_pcr_k']:.4f} |")
    return "\n".join(lines) + "\n"


def _half_way_step(steps: np.ndarray, curve: np.ndarray, start: float, end: float) -> int | None:
    """First step where ``curve`` has gone half-way from ``start`` to ``end``."""
    mid = (start + end) / 2
    hit = np.nonzero((curve - mid) * np.sign(end - start) >= 0)[0]
    return int(steps[hit[0]]) if len(hit) else None


def _icl_theory_summary(setup: ICLSetup, records: list[dict], pop: theory.PopulationTrajectory) -> dict:
    study, m = setup.study, setup.moments
    d_, n, sigma = study.data.x_dim, study.data.n_context, study.data.noise_std
    steps = np.array([r["step"] for r in records])
    train = np.array([r["train/loss"] for r in records])
    test = np.array([r["test/loss"] for r in records])
    kappa = np.array([[r[f"modes/kappa_{d + 1}"] for d in range(d_)] for r in records])
    kappa_th = setup.modes(pop.gamma)
    plateaus = theory.plateau_losses(setup.covariance, n, sigma)
    pcr = [algorithms.pcr_loss(setup.covariance, n, k, sigma) for k in range(d_ + 1)]
    out: dict[str, Any] = {
        "study": study.name,
        "parametrization": study.model.parametrization,
        "conventions": {"loss": "mean squared error, no 1/2", "context_scale": setup.context_scale,
                        "time": "gradient-flow time t = lr * epoch"},
        "eigenvalues": m.eigvals.tolist(),
        "gamma_star": m.gamma_star.tolist(),
        "plateau_losses_theory": plateaus.tolist(),
        "pcr_losses": pcr,
        "least_squares_loss": algorithms.least_squares_loss(d_, n, sigma),
        "final": {"train_loss": float(train[-1]), "test_loss": float(test[-1]),
                  "theory_loss": float(pop.loss[-1]), "optimum_loss_theory": float(plateaus[-1])},
    }
    # every mode: the step its κ_d is half-learned, simulation vs theory
    mode_steps = [_half_way_step(steps, kappa[:, d], 0.0, m.gamma_star[d]) for d in range(d_)]
    mode_steps_th = [_half_way_step(pop.steps, kappa_th[:, d], 0.0, m.gamma_star[d]) for d in range(d_)]
    out["mode_half_steps"] = {"simulation": mode_steps, "theory": mode_steps_th}
    if study.model.parametrization == "merged":
        drop = _half_way_step(steps, train, train[0], train[-1])
        drop_th = _half_way_step(pop.steps, pop.loss, pop.loss[0], pop.loss[-1])
        model0 = setup.new_model()
        w0 = model0.head_matrices()[:, :-1, :-1].detach().double().cpu().numpy()
        v0 = model0.value[:, -1].detach().double().cpu().numpy()
        t_est = theory.merged_drop_time(setup.covariance, n, v0, w0, sigma, setup.context_scale)
        out["drop_step"] = {"simulation": drop, "theory_population_gd": drop_th,
                            "theory_closed_form_estimate": t_est / study.train.lr}
        # abruptness: epochs for the loss to go from 90 % to 10 % of the way down
        lo = _half_way_step(steps, train, train[0], train[0] + 0.2 * (train[-1] - train[0]))
        hi = _half_way_step(steps, train, train[0], train[0] + 1.8 * (train[-1] - train[0]))
        out["drop_width_steps"] = None if lo is None or hi is None else hi - lo
    else:
        order = [d for d in np.argsort([s if s is not None else np.inf for s in mode_steps])]
        out["mode_order_simulation"] = [int(d) + 1 for d in order]
        out["modes_in_order_of_decreasing_eigenvalue"] = bool(
            all(s is not None for s in mode_steps) and all(np.diff(mode_steps) > 0))
        # plateau k lives between learning mode k and mode k+1: take its flattest point
        bounds = [0] + sorted(s for s in mode_steps if s is not None) + [int(steps[-1])]
        plateau_rows = []
        for k in range(len(bounds) - 1):
            sel = np.nonzero((steps >= bounds[k]) & (steps <= bounds[k + 1]))[0]
            if k > 0 and k < len(bounds) - 2 and len(sel) > 4:
                grad = np.abs(np.gradient(train[sel], steps[sel]))
                inner = sel[1:-1][np.argmin(grad[1:-1])]
            else:
                inner = sel[0] if k == 0 else sel[-1]
            rec = records[int(inner)]
            pcr_d = {j: rec[f"algo/pcr_{j}"] for j in range(d_ + 1)}
            att_d = {j: rec[f"algo/attention_pcr_{j}"] for j in range(d_ + 1)}
            plateau_rows.append({
                "k": k, "step": int(steps[inner]), "train_loss": float(train[inner]), "test_loss": float(test[inner]),
                "theory_L_k": float(plateaus[k]), "pcr_k_loss": float(pcr[k]),
                "closest_pcr": int(min(pcr_d, key=pcr_d.get)),
                "closest_attention_pcr": int(min(att_d, key=att_d.get)),
                "distance_to_pcr_k": float(pcr_d[k]), "distance_to_attention_pcr_k": float(att_d[k]),
            })
        out["plateaus"] = plateau_rows
    return out


def _series(records: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in records])


def _icl_figures(setup: ICLSetup, records, pop, summary, run: RunDir) -> None:
    study = setup.study
    steps = _series(records, "step")
    title = f"{study.name}: {study.model.parametrization} linear attention, D={study.data.x_dim}, N={study.data.n_context}"
    fig = figures.loss_figure(steps, _series(records, "train/loss"), _series(records, "test/loss"), pop.steps, pop.loss,
                              summary["plateau_losses_theory"], summary["pcr_losses"], title)
    figures.save_figure(fig, run.figures_dir / "loss")
    kappa = np.stack([_series(records, f"modes/kappa_{d + 1}") for d in range(study.data.x_dim)], axis=1)
    fig = figures.modes_figure(steps, kappa, pop.steps, setup.modes(pop.gamma), setup.moments.gamma_star,
                               setup.moments.eigvals, study.name)
    figures.save_figure(fig, run.figures_dir / "modes")
    names = [k[len("algo/"):] for k in records[0] if k.startswith("algo/") and "pcr" in k]
    fig = figures.algorithm_figure(steps, {n: _series(records, f"algo/{n}") for n in names},
                                   f"{study.name}: distance of the model's predictions to each predictor")
    figures.save_figure(fig, run.figures_dir / "algorithms")


def track_icl(study: ICLStudy, run: RunDir) -> dict:
    """Spectral rank, subspace stability and "which algorithm" over the run's checkpoints; measures.json."""
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.root} has no checkpoints yet; run `rnnautomata run` first")
    setup = build_icl(study, "cpu")
    model = setup.new_model()
    suite = _suite_predictions(setup)
    states, dist = [], []
    for s in steps:
        weights = load_weights(run, s, model)
        with torch.no_grad():
            gamma = model.effective_matrix().detach()
            states.append({**weights, "effective_gamma": gamma})
            dist.append(measures.which_algorithm(model(setup.test.tokens), suite, setup.test.target))
    k = study.measures.top_k
    spec = measures.spectral_dynamics(states, rel_tol=study.measures.rel_tol)
    stab = measures.subspace_stability(states, k)
    out = {
        "steps": steps,
        "spectral": {n: {"effective_rank": v["effective_rank"].tolist(), "rank": v["rank"].tolist(),
                         "singular_values": v["singular_values"].tolist()} for n, v in spec.items()},
        "subspace_stability": {n: v.tolist() for n, v in stab.items()},
        "which_algorithm": {n: [d[n] for d in dist] for n in dist[0]},
        "closest_algorithm": [min(d, key=d.get) for d in dist],
    }
    atomic_write_json(run.root / "measures.json", out)
    fig = figures.measures_figure(np.array(steps), {n: v["effective_rank"] for n, v in spec.items()}, stab,
                                  f"{study.name}: spectral rank and subspace stability (k={k})")
    figures.save_figure(fig, run.figures_dir / "measures")
    return out

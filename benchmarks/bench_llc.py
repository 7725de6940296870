"""LLC estimates: our SGLD sampler against devinterp 2.0.1's (the ``[slt]`` extra), time and value.

Run: .venv/bin/python benchmarks/bench_llc.py [--steps 1000] [--repeats 2] [--threads 1]

1. The transient-ridge model: ``tasks/transient_ridge_small.toml``'s transformer (D = 4, K = 8,
   d_model 32, 2 layers), trained ``--steps`` Adam steps from the study's seed (M = 16 tasks), then
   the study's LLC measurement (its 512 fixed sequences and SGLD settings: ε = 1e-4, γ = 1000,
   nβ = n / log n, 2 chains × 80 draws after 40 burn-in steps) by ``estimate_llc`` and by
   ``estimate_llc_devinterp``: seconds per estimate (best of ``--repeats``) and λ̂ (devinterp's with
   and without burn-in).
2. A regular model with a closed form: linear regression, d = 16, n = 500 at its minimum
   (λ = d/2 = 8; the exact finite-ε, finite-γ chain value from ``gaussian_llc``), 4 chains × 500
   draws after 50 burn-in steps, ε = 1e-3, γ = 1.

The baseline is devinterp; on a shared machine compare the ratio inside one run (the load average
is printed). devinterp's first call also pays its import (transformers, datasets: seconds), timed
apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

from rnnautomata.icl.llc import SGLD, estimate_llc, gaussian_llc

ROOT = Path(__file__).resolve().parents[1]


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def best_of(fn, repeats: int):
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def transient_ridge_case(steps: int):
    """(model, loss_fn, data, sampler) of the small transient-ridge study after ``steps`` Adam steps."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from rnnautomata.studies import transient_ridge as tr

    raw = tomllib.loads((ROOT / "tasks/transient_ridge_small.toml").read_text())
    study = tr.load_transient_ridge(raw)
    model = tr._new_model(study, "cpu")
    data_sampler = tr._sampler(study, tr._pool(study))
    rng = np.random.default_rng(study.train.seed)
    opt = torch.optim.Adam(model.parameters(), lr=study.train.lr)
    for _ in range(steps):
        b = data_sampler.sample(study.train.batch_size, rng)
        opt.zero_grad()
        tr._mse(model, b.xs, b.ys).backward()
        opt.step()
    me = study.measures
    sampler = SGLD(step_size=me.llc_step_size, localization=me.llc_localization, nbeta=me.llc_nbeta,
                   chains=me.llc_chains, draws=me.llc_draws, burn_in=me.llc_burn_in, batch_size=me.llc_batch_size)
    llc = tr.fixed_batches(study).llc
    return model, tr._mse, (llc.xs, llc.ys), sampler


def regression_case():
    gen = torch.Generator().manual_seed(0)
    n, d = 500, 16
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w[None])
    sampler = SGLD(step_size=1e-3, localization=1.0, chains=4, draws=500, burn_in=50)
    exact = gaussian_llc(np.linalg.eigvalsh(2 * (x.T @ x).numpy() / n), n / math.log(n), 1.0, 1e-3)
    return model, lambda m, a, b: ((m(a).squeeze(-1) - b) ** 2).mean(), (x, x @ w), sampler, exact


def compare(name: str, model, loss_fn, data, sampler: SGLD, repeats: int, exact: float | None = None) -> None:
    from rnnautomata.icl.llc_devinterp import estimate_llc_devinterp

    steps = sampler.chains * (sampler.burn_in + sampler.draws)
    t_ours, ours = best_of(lambda: estimate_llc(model, loss_fn, data, sampler, torch.Generator().manual_seed(0)),
                           repeats)
    t_dv, dv = best_of(lambda: estimate_llc_devinterp(model, loss_fn, data, sampler, seed=0), repeats)
    print(f"\n{name}: n = {int(data[0].shape[0])}, {sampler.chains} chains × ({sampler.burn_in} burn-in + "
          f"{sampler.draws} draws), ε = {sampler.step_size}, γ = {sampler.localization}, nβ = {ours.nbeta:.2f}")
    if exact is not None:
        print(f"  closed form (exact chain): λ = {exact:.3f}")
    print(f"  ours:      λ̂ = {ours.mean:.3f} ± {ours.std:.3f} (chain sd)   {t_ours:.2f} s  "
          f"({1e3 * t_ours / steps:.2f} ms/step)")
    print(f"  devinterp: λ̂ = {dv.mean:.3f} ± {dv.std:.3f} burn-in excluded, {dv.reported_mean:.3f} as it reports "
          f"(burn-in included)   {t_dv:.2f} s  ({1e3 * t_dv / steps:.2f} ms/step)   {t_dv / t_ours:.1f}× ours")
    print(f"  load average: {load_avg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="Adam steps before measuring the transient-ridge model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--draws", type=int, help="draws per chain in both cases (default: the study's, 500 for the linear model)")
    parser.add_argument("--burn-in", type=int, help="burn-in steps per chain in both cases (default: the study's, 50)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s); load average {load_avg()}")
    start = time.perf_counter()
    try:
        import devinterp.slt.llc  # noqa: F401
    except ImportError:
        from rnnautomata.icl.llc_devinterp import SLT_EXTRA
        raise SystemExit(f"devinterp is not installed: {SLT_EXTRA}")
    from importlib.metadata import version
    print(f"devinterp {version('devinterp')}: import {time.perf_counter() - start:.1f} s (once per process)")
    def sized(sampler: SGLD) -> SGLD:
        return dataclasses.replace(sampler, draws=args.draws or sampler.draws,
                                   burn_in=sampler.burn_in if args.burn_in is None else args.burn_in)

    model, loss_fn, data, sampler = transient_ridge_case(args.steps)
    sampler = sized(sampler)
    compare(f"transient_ridge_small, M = 16, after {args.steps} Adam steps", model, loss_fn, data, sampler,
            args.repeats)
    model, loss_fn, data, sampler, exact = regression_case()
    sampler = sized(sampler)
    exact = exact if sampler == regression_case()[3] else None   # the closed form is for the default chain
    compare("linear regression, d = 16 (λ = d/2 = 8)", model, loss_fn, data, sampler, args.repeats, exact)


if __name__ == "__main__":
    main()

"""The K* analysis of an icl_classification sweep against synthetic runs with a known threshold
(K* = c·N^s put in by hand), bimodality counts against a direct count, the run summary's
transience rule, and summarise_run against a run's own metrics.

Unit tier, except the last test (a tiny real run, ~2 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnautomata.icl.classification import TRANSIENT_DROP, summarise, summarise_run, sweep_figures
from rnnautomata.icl.grokking import jump_step
from rnnautomata.icl.study import load_study, run_study
from rnnautomata.icl.threshold import MIDDLE_BAND, NEAR_FACTOR, PAPER_SLOPE, analyse_threshold, bimodality

KS = [64, 128, 256, 512, 1024, 2048, 4096, 8192]
NS = [10, 20, 40]


def synthetic(slope: float, c: float = 8.0, width: float = 0.3, seeds=(0, 1, 2), noise: float = 0.0, rng=None) -> list[dict]:
    """Final ICL accuracies on the sigmoid of fit_threshold with K* = c·N^slope (plus optional noise)."""
    runs = []
    for n in NS:
        k_star = c * n ** slope
        for k in KS:
            for s in seeds:
                acc = 0.5 + 0.5 / (1 + np.exp(-(np.log(k) - np.log(k_star)) / width))
                if noise:
                    acc = float(np.clip(acc + noise * rng.standard_normal(), 0.0, 1.0))
                runs.append({"n_items": k, "n_context": n, "seed": s, "acc_icl": float(acc), "chance": 0.5})
    return runs


def test_noiseless_runs_give_back_the_threshold_and_the_slope_put_in():
    a = analyse_threshold(synthetic(PAPER_SLOPE), np.random.default_rng(0), n_boot=20)
    for p, n in zip(a["per_n"], NS):
        assert p["k_star"] == pytest.approx(8.0 * n ** PAPER_SLOPE, rel=1e-3)
        assert p["width"] == pytest.approx(0.3, rel=1e-3)
        assert all(v == pytest.approx(p["k_star"], rel=1e-3) for v in p["k_star_per_seed"].values())
        assert p["k_star_q16"] == pytest.approx(p["k_star"], rel=1e-3)  # identical seeds: no spread
    assert a["slope"] == pytest.approx(PAPER_SLOPE, rel=1e-3) and a["paper_slope"] == pytest.approx(1 / 0.7)
    assert all(v == pytest.approx(PAPER_SLOPE, rel=1e-3) for v in a["slope_per_seed"].values())


def test_noisy_runs_bracket_the_true_threshold_and_slope():
    rng = np.random.default_rng(1)
    a = analyse_threshold(synthetic(1.0, seeds=range(6), noise=0.05, rng=rng), np.random.default_rng(2), n_boot=100)
    for p, n in zip(a["per_n"], NS):
        truth = 8.0 * n
        assert p["k_star_q16"] < p["k_star_q84"]
        assert p["k_star"] == pytest.approx(truth, rel=0.25)
        assert p["k_star_q16"] / 1.5 < truth < p["k_star_q84"] * 1.5
    assert a["slope"] == pytest.approx(1.0, abs=0.2) and a["slope_q16"] < a["slope_q84"]


def test_an_n_whose_runs_do_not_straddle_has_no_threshold():
    runs = [r for r in synthetic(1.0) if r["n_context"] != 40]
    runs += [{"n_items": k, "n_context": 40, "seed": 0, "acc_icl": 0.5, "chance": 0.5} for k in KS]
    a = analyse_threshold(runs, np.random.default_rng(0), n_boot=10)
    last = a["per_n"][-1]
    assert last["n_context"] == 40 and last["k_star"] is None and last["bimodality"] is None
    assert a["slope"] == pytest.approx(1.0, rel=1e-3)  # from the two N that have one


def test_bimodality_counts_match_a_direct_count():
    rng = np.random.default_rng(3)
    k = rng.choice([50, 100, 200, 400, 800, 1600], size=200).astype(float)
    acc = rng.uniform(0.4, 1.0, size=200)
    k_star = 300.0
    got = bimodality(k, acc, k_star, 0.5)
    lo, hi = 0.5 + 0.5 * MIDDLE_BAND[0], 0.5 + 0.5 * MIDDLE_BAND[1]
    near = [a for kk, a in zip(k, acc) if k_star / NEAR_FACTOR <= kk <= k_star * NEAR_FACTOR]
    assert got["n_near"] == len(near)
    assert got["n_low"] == sum(a < lo for a in near) and got["n_high"] == sum(a > hi for a in near)
    assert got["n_middle"] == len(near) - got["n_low"] - got["n_high"]
    assert got["fraction_middle"] == pytest.approx(got["n_middle"] / len(near))


def _records(icl: list[float]) -> list[dict]:
    return [{"step": 100 * i, "acc/icl": a, "acc/iwl": 0.5, "loss/icl": 0.0, "loss/iwl": 0.0, "train/loss": 0.0}
            for i, a in enumerate(icl)]


@pytest.mark.parametrize("icl, appeared, transient", [
    ([0.5, 0.6, 0.95, 0.99], True, False),                       # acquired and kept
    ([0.5, 0.95, 0.99, 0.99 - TRANSIENT_DROP - 0.02], True, True),  # fell more than the margin
    ([0.5, 0.95, 0.99, 0.99 - TRANSIENT_DROP + 0.02], True, False),  # fell, but less than the margin
    ([0.5, 0.7, 0.74, 0.55], False, False),                      # never reached the level 0.75
])
def test_transience_is_a_fall_below_the_peak_by_more_than_the_margin(icl, appeared, transient):
    study = load_study({"kind": "icl_classification", "data": {"n_items": 200}})
    s = summarise(study, _records(icl), jump_step)
    assert (max(icl) >= s["level"]) == appeared and s["icl_transient"] == transient


def test_summarise_run_reads_the_runs_own_metrics(tmp_path):
    raw = {"kind": "icl_classification", "name": "tiny_cls",
           "data": {"x_dim": 6, "n_items": 40, "n_context": 5, "n_test": 100}, "model": {"mlp_width": 16},
           "train": {"lr": 0.05, "batch_size": 16, "epochs": 40, "eval_every": 10, "checkpoint_every": 20}}
    run_study(load_study(raw), tmp_path / "r", "cpu", progress=False)
    from rnnautomata.runs import RunDir

    rows = RunDir(tmp_path / "r").read_metrics()
    icl = [r["acc/icl"] for r in rows]
    got = summarise_run(tmp_path / "r")
    assert got["acc_icl"] == icl[-1] and got["acc_iwl"] == rows[-1]["acc/iwl"]
    assert got["peak_icl"] == max(icl) and got["peak_icl_step"] == rows[int(np.argmax(icl))]["step"]
    assert got["icl_appeared"] == (max(icl) >= 0.75)
    assert got["t_icl"] == jump_step(np.array([r["step"] for r in rows]), np.array(icl), 0.75)
    assert sweep_figures(tmp_path / "sweep", [tmp_path / "r"]) == []  # one K: no threshold to fit

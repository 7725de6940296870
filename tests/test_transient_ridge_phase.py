"""The transient-ridge sweep's phase picture: 2 values of M × 2 seeds of tiny real runs; what it
plots is checked against each run's own metrics.jsonl, read here independently."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from rnnautomata.studies import get_kind
from rnnautomata.studies.transient_ridge import (
    PHASE_KEYS,
    SWEEP_MEASURES,
    summarise_run,
    sweep_figure,
    sweep_phase_figure,
    sweep_points,
)
from rnnautomata.sweep import summary_spread
from tests.test_transient_ridge import TINY as BASE_TINY

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# the tiny study of tests/test_transient_ridge.py, with a faster rate (so the OOD minima fall at
# different steps) and the seed swept
TINY = (BASE_TINY.replace('name = "tiny"', 'name = "phase"').replace("[train]\n", "[train]\nlr = 0.03\nseed = {seed}\n")
        .replace("{epochs}", "20"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("phase")
    kind = get_kind("transient_ridge")
    dirs = []
    for m in (2, "inf"):
        for seed in (0, 1):
            out = tmp / f"m{m}_s{seed}"
            kind.run(kind.load(tomllib.loads(TINY.format(m=json.dumps(m), seed=seed))), out, progress=False, render=False)
            dirs.append(out)
    return tmp, dirs


def _ood_argmin_step(run) -> int:
    """The first step at which loss/ood is smallest, straight from metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda r: r["loss/ood"])      # min keeps the first of equal values
    return best["step"]


def test_the_phase_picture_plots_each_runs_own_ood_minimum(swept):
    tmp, dirs = swept
    paths = sweep_figure(dirs, tmp / "figures")
    assert {p.name for p in paths} == {"transient_ridge_sweep.png", "transient_ridge_sweep.svg"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    points = json.loads((tmp / "figures" / "transient_ridge_sweep.json").read_text())
    expected = {str(d): _ood_argmin_step(d) for d in dirs}
    assert {r["dir"]: r["min_loss_ood_step"] for r in points["runs"]} == expected
    # per M: median and min-max over its two seeds
    for m, x in ((2, 2.0), ("inf", points["inf_x"])):
        steps = [expected[str(d)] for d in dirs if d.name.startswith(f"m{m}_")]
        (band,) = [b for b in points["by_m"] if b["M"] == m]
        assert band["x"] == x and band["n"] == 2
        assert band["min_loss_ood_step"]["median"] == np.median(steps)
        assert (band["min_loss_ood_step"]["min"], band["min_loss_ood_step"]["max"]) == (min(steps), max(steps))
    # and the figure's own scatter of seeds in the OOD-minimum panel holds those steps
    fig = sweep_phase_figure(sweep_points(dirs))
    (ax,) = [a for a in fig.axes if a.get_title() == "step of the OOD-loss minimum"]
    (dots,) = [c for c in ax.collections if c.get_gid() == "seeds:min_loss_ood_step"]
    plotted = sorted(map(tuple, dots.get_offsets().tolist()))
    x_of = {str(d): 2.0 if d.name.startswith("m2_") else points["inf_x"] for d in dirs}
    assert plotted == sorted((x_of[k], float(v)) for k, v in expected.items())
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_spread_matches_the_sweep_aggregate_columns(swept):
    """The picture's medians are the ones aggregate.csv gets from summary_spread, and every
    phase-diagram panel names a column that exists."""
    _, dirs = swept
    points = sweep_points(dirs)
    for band in points["by_m"]:
        group = [d for d in dirs if d.name.startswith(f"m{band['M']}_")]
        columns = summary_spread([{"seed": i, **summarise_run(d)} for i, d in enumerate(group)])
        for key in PHASE_KEYS:
            assert band[key]["median"] == pytest.approx(columns[f"{key}_median"])
            assert (band[key]["q25"], band[key]["q75"]) == pytest.approx((columns[f"{key}_q25"], columns[f"{key}_q75"]))
        assert {c for c, _, _ in SWEEP_MEASURES} <= set(columns)
    assert get_kind("transient_ridge").sweep_measures == SWEEP_MEASURES
    assert all(math.isfinite(r["final_dist_ridge"]) for r in points["runs"])

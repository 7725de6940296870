"""Study kind transient_ridge: config errors, the interleaved-token transformer, fixed batches, the
joint trajectory PCA against numpy's SVD, and (integration tier) tiny runs through the CLI with a
resume, track, summarise and the sweep figures. The runs take a few seconds each."""

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

from rnnautomata.cli import main
from rnnautomata.errors import ConfigError
from rnnautomata.icl.trajectory_pca import TrajectoryPCA
from rnnautomata.models.icl_transformer import RegressionTransformer, build_regression_transformer, interleave
from rnnautomata.studies import get_kind
from rnnautomata.studies.transient_ridge import (
    fixed_batches,
    load_transient_ridge,
    pca_of_runs,
    study_toml,
    summarise_run,
)

TASKS = Path(__file__).resolve().parents[1] / "tasks"

TINY = """kind = "transient_ridge"
name = "tiny"
[data]
x_dim = 2
n_examples = 4
noise_var = 0.25
n_tasks = {m}
[model]
d_model = 8
d_mlp = 8
n_heads = 2
[train]
batch_size = 16
epochs = {epochs}
eval_every = 5
checkpoint_every = 10
[measures]
n_eval = 32
n_ood = 32
n_pca = 8
llc_every = 10
llc_samples = 32
llc_draws = 4
llc_burn_in = 2
"""


def tiny(m=2, epochs=20):
    return tomllib.loads(TINY.format(m=json.dumps(m), epochs=epochs))


# ------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("section, key, value, match", [
    ("data", "n_tasks", 0, "data.n_tasks must be a positive integer"),
    ("data", "n_tasks", -4, "data.n_tasks must be a positive integer"),
    ("data", "n_tasks", "many", "data.n_tasks must be a positive integer"),
    ("data", "noise_var", 0.0, "data.noise_var must be positive"),
    ("model", "max_examples", 3, "data.n_examples .4. is larger than model.max_examples"),
    ("model", "n_heads", 3, "model.d_model .8. must be a multiple"),
    ("measures", "llc_every", 7, "measures.llc_every .7. must be a multiple"),
    ("train", "optimizer", "rmsprop", "train.optimizer = 'rmsprop' is not allowed"),
    ("train", "bogus", 1, "unknown field train.bogus"),
])
def test_bad_study_values_are_one_line_errors(section, key, value, match):
    raw = tiny()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=match) as err:
        load_transient_ridge(raw)
    assert "\n" not in str(err.value)


def test_study_round_trips_through_its_toml_and_infinite_m_is_a_string():
    study = load_transient_ridge(tiny(m="inf"))
    assert study.n_tasks == math.inf
    assert load_transient_ridge(tomllib.loads(study_toml(study))) == study
    assert load_transient_ridge(tiny(m=3)).n_tasks == 3
    raw = tiny()
    raw["data"]["n_tasks"] = math.inf                # TOML's bare inf, as `--set data.n_tasks=inf` gives
    assert load_transient_ridge(raw).data.n_tasks == "inf"


@pytest.mark.parametrize("name", ["transient_ridge_small", "transient_ridge_paper"])
def test_shipped_studies_load(name):
    raw = tomllib.loads((TASKS / f"{name}.toml").read_text())
    sweep = raw.pop("sweep")
    study = load_transient_ridge(raw)
    for m in sweep["grid"]["data.n_tasks"]:
        load_transient_ridge({**raw, "data": {**raw["data"], "n_tasks": m}})
    assert study.data.noise_var == 0.125


# ------------------------------------------------------------------------------------- model
def test_interleaved_tokens_are_0x_then_y0():
    xs = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    ys = torch.tensor([[5.0, 6.0]])
    assert interleave(xs, ys).tolist() == [[[0, 1, 2], [5, 0, 0], [0, 3, 4], [6, 0, 0]]]


def test_prediction_k_sees_the_earlier_pairs_and_x_k_but_not_y_k():
    model = build_regression_transformer(3, 5, 16, 16, 2, 2, None, torch.Generator().manual_seed(0))
    xs, ys = torch.randn(4, 5, 3), torch.randn(4, 5)
    base = model(xs, ys)
    ys2 = ys.clone()
    ys2[:, 2] += 5.0
    moved = (model(xs, ys2) - base).abs().amax(0)
    assert torch.all(moved[:3] == 0) and torch.all(moved[3:] > 0)        # y_3 reaches positions 4, 5 only
    xs2 = xs.clone()
    xs2[:, 2] += 1.0
    moved = (model(xs2, ys) - base).abs().amax(0)
    assert torch.all(moved[:2] == 0) and torch.all(moved[2:] > 0)        # x_3 reaches positions 3..5


def test_model_refuses_more_examples_than_its_position_table():
    model = RegressionTransformer(2, 3, 8, 8, 2, 1)
    with pytest.raises(ConfigError, match="longer than the model's position table"):
        model(torch.zeros(1, 4, 2), torch.zeros(1, 4))


# ------------------------------------------------------------------------------ fixed batches
def test_fixed_batches_depend_on_the_study_seeds_only():
    a, b = fixed_batches(load_transient_ridge(tiny())), fixed_batches(load_transient_ridge(tiny()))
    for name in ("eval", "ood", "pca", "llc"):
        assert torch.equal(getattr(a, name).xs, getattr(b, name).xs) and torch.equal(getattr(a, name).ys, getattr(b, name).ys)
    raw = tiny(m=64)
    raw["train"]["seed"] = 5                       # another training seed and M: the same PCA and OOD batches
    c = fixed_batches(load_transient_ridge(raw))
    assert torch.equal(a.pca.ys, c.pca.ys) and torch.equal(a.ood.ys, c.ood.ys)
    assert torch.all(a.pca.tasks == a.pca.tasks[0])   # every PCA sequence has task t_1
    raw = tiny()
    raw["measures"]["probe_seed"] = 1
    assert not torch.equal(fixed_batches(load_transient_ridge(raw)).eval.ys, a.eval.ys)


# ------------------------------------------------------------------------------------- PCA
def test_trajectory_pca_matches_numpy_svd_on_a_toy_stack():
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((30, 3)) @ np.diag([5.0, 2.0, 0.5]) @ rng.standard_normal((3, 12)) + 3.0
    pca = TrajectoryPCA(2).fit(stack)
    centred = stack - stack.mean(0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(pca.explained_variance_ratio_, (s ** 2 / (s ** 2).sum())[:2], rtol=1e-10)
    for i in range(2):                            # the same directions up to sign
        assert abs(pca.components_[i] @ vt[i]) == pytest.approx(1.0, abs=1e-10)
    coords = pca.transform(stack)
    np.testing.assert_allclose(np.abs(coords), np.abs(u[:, :2] * s[:2]), atol=1e-9)
    # a point not in the stack is projected with the stack's centring, not its own
    extra = rng.standard_normal(12)
    np.testing.assert_allclose(pca.transform(extra), (extra - stack.mean(0)) @ pca.components_.T)


def test_trajectory_pca_refuses_a_single_row():
    with pytest.raises(ValueError, match="N ≥ 2"):
        TrajectoryPCA(2).fit(np.zeros((1, 4)))


# ------------------------------------------------------------------------ integration (CLI)
def _write(tmp: Path, name: str, raw_text: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(raw_text)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transient")
    out = {}
    for m, epochs in ((2, 20), ("inf", 20)):
        study = _write(tmp, f"m{m}", TINY.format(m=json.dumps(m), epochs=epochs))
        assert main(["--threads", "1", "run", str(study), "--out", str(tmp / f"m{m}"), "--quiet"]) == 0
        out[m] = tmp / f"m{m}"
    # the same M = 2 study, cut after 10 steps, then resumed to 20
    half = _write(tmp, "half", TINY.format(m=2, epochs=10))
    assert main(["--threads", "1", "run", str(half), "--out", str(tmp / "resumed"), "--quiet", "--no-render"]) == 0
    full = _write(tmp, "full", TINY.format(m=2, epochs=20))
    assert main(["--threads", "1", "run", str(full), "--out", str(tmp / "resumed"), "--quiet", "--no-render"]) == 0
    out["resumed"] = tmp / "resumed"
    out["tmp"] = tmp
    return out


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_every_metric_key_and_figures(runs):
    rows = _metrics(runs[2])
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20]
    for key in ("train/loss", "loss/eval", "loss/ood", "dist/ridge", "dist/dmmse"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert all(len(r["dist/ridge_by_position"]) == 4 for r in rows)
    assert [r["step"] for r in rows if "llc/mean" in r] == [0, 10, 20]
    assert (runs[2] / "figures" / "transient_ridge.png").is_file()
    base = json.loads((runs[2] / "baselines.json").read_text())
    assert base["dmmse/eval"]["mean"] < base["ridge/eval"]["mean"]      # dMMSE is optimal on its own pool
    # for M = inf, dMMSE_inf is ridge: the two distances coincide
    assert all(r["dist/ridge"] == r["dist/dmmse"] for r in _metrics(runs["inf"]))


def test_a_resumed_run_equals_an_uninterrupted_one(runs):
    a, b = _metrics(runs[2]), _metrics(runs["resumed"])
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ("train/loss", "dist/ridge", "dist/dmmse", "loss/ood", "llc/mean"):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-7), (ra["step"], key)


def test_track_recomputes_the_checkpoint_measures(runs):
    assert main(["track", str(runs[2]), "--quiet"]) == 0
    measures = json.loads((runs[2] / "measures.json").read_text())
    rows = {r["step"]: r for r in _metrics(runs[2])}
    for row in measures["checkpoints"]:
        assert row["dist/ridge"] == pytest.approx(rows[row["step"]]["dist/ridge"], rel=1e-6)
        assert row["loss/ood"] == pytest.approx(rows[row["step"]]["loss/ood"], rel=1e-6)


def test_summarise_gives_flat_scalars(runs):
    s = get_kind("transient_ridge").summarise(runs[2])
    assert s == summarise_run(runs[2])
    assert s["n_tasks"] == 2 and s["steps"] == 20 and s["final_closer_to"] in ("ridge", "dmmse")
    assert all(not isinstance(v, (dict, list)) for v in s.values())
    assert math.isinf(summarise_run(runs["inf"])["n_tasks"])


def test_sweep_figures_draw_the_joint_pca(runs):
    paths = get_kind("transient_ridge").sweep_figures(runs["tmp"] / "sweep", [runs[2], runs["inf"]])
    names = {p.name for p in paths}
    assert {"trajectory_pca.png", "transient_ridge_sweep.png"} <= names
    result = json.loads((runs["tmp"] / "sweep" / "figures" / "trajectory_pca.json").read_text())
    assert set(result["references"]) == {"ridge", "dMMSE M=2"}
    assert len(result["runs"]) == 2 and 0 < sum(result["explained_variance_ratio"]) <= 1


def test_joint_pca_refuses_runs_with_different_probe_batches(runs, tmp_path):
    raw = TINY.format(m=2, epochs=10).replace("n_pca = 8", "n_pca = 8\nprobe_seed = 3")
    other = _write(tmp_path, "other", raw)
    assert main(["--threads", "1", "run", str(other), "--out", str(tmp_path / "other"), "--quiet", "--no-render"]) == 0
    with pytest.raises(ConfigError, match="disagree on measures.probe_seed"):
        pca_of_runs([runs[2], tmp_path / "other"])


def test_cli_refuses_m_zero_in_one_line(tmp_path, capsys):
    study = _write(tmp_path, "bad", TINY.format(m=0, epochs=10))
    assert main(["run", str(study), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.n_tasks must be a positive integer") and "\n" not in err

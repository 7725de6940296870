"""The CUDA path against the CPU path. Skipped where torch sees no GPU (CI has none); run on a GPU
machine with `.venv/bin/python -m pytest tests/test_cuda.py`."""

import pytest
import torch

from rnnautomata.batched import seed_dir, train_seeds
from rnnautomata.config import study_from_dict
from rnnautomata.dynamics import track
from rnnautomata.runs import RunDir, load_checkpoint
from rnnautomata.train import train

from conftest import tiny_raw

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")

# cuBLAS sums in another order than the CPU's BLAS (and may use TF32 where allowed): compare with
# a tolerance that a wrong row, seed or gradient would exceed by orders of magnitude.
ATOL = 1e-4


def _same_checkpoints(a_dir, b_dir):
    a_run, b_run = RunDir(a_dir), RunDir(b_dir)
    assert a_run.steps() == b_run.steps()
    for step in a_run.steps():
        a, _ = load_checkpoint(a_run.checkpoint_path(step))
        b, _ = load_checkpoint(b_run.checkpoint_path(step))
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=ATOL, msg=f"step {step} {k}")


@pytest.mark.parametrize("arch", ["elman", "gru", "lstm"])
def test_many_seeds_on_the_gpu_match_the_cpu(tmp_path, arch):
    study = study_from_dict(tiny_raw(seeds=[0, 3], model={"arch": arch}))
    train_seeds(study, tmp_path / "cpu", device="cpu", progress=False)
    train_seeds(study, tmp_path / "gpu", device="cuda", progress=False)
    for s in study.seeds:
        _same_checkpoints(seed_dir(tmp_path / "cpu", s), seed_dir(tmp_path / "gpu", s))


def test_single_run_and_tracking_on_the_gpu(tmp_path):
    study = study_from_dict(tiny_raw())
    train(study, tmp_path / "cpu", device="cpu", progress=False)
    train(study, tmp_path / "gpu", device="cuda", progress=False)
    _same_checkpoints(tmp_path / "cpu", tmp_path / "gpu")
    a = track(tmp_path / "cpu", device="cpu", progress=False, write=False)
    b = track(tmp_path / "gpu", device="cuda", progress=False, write=False)
    assert [c["step"] for c in a["checkpoints"]] == [c["step"] for c in b["checkpoints"]]
    assert a["checkpoints"][-1]["n_states_min"] == b["checkpoints"][-1]["n_states_min"]

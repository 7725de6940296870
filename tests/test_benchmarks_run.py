"""Every benchmark script still runs (tiny sizes): benchmarks are not timed here, only kept from
rotting when the code they wrap changes. Their figures come from full runs (docs/benchmarks.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMOKE = {
    "bench_train.py": ["--seeds", "1", "2", "--seconds", "0.05", "--repeats", "1", "--threads", "1"],
    "bench_study.py": ["--set", "train.epochs=2", "--set", "probe.depth=4", "--no-render", "--threads", "1"],
    "bench_extract.py": ["--depth", "8", "--sklearn-points", "300"],
    "bench_minimize.py": ["--depths", "6", "--baseline-depths", "6", "--repeats", "1", "--baseline-timeout", "20"],
    "bench_llc.py": ["--steps", "2", "--repeats", "1", "--draws", "3", "--burn-in", "1"],
    "bench_icl.py": ["--steps", "20", "--batch", "50"],
    "bench_robust.py": ["--machines", "1", "--archs", "gru", "--seeds", "0", "--epochs", "2", "--no-lstar",
                        "--recipe", "zoo", "--work", "{tmp}"],
    "bench_zoo.py": ["--only", "tomita1", "--work", "{tmp}"],
    "bench_transformer.py": ["--set", "train.epochs=1", "--depth", "4"],
    "bench_length_generalisation.py": ["--tasks", "tomita1", "--positionals", "none", "--seeds", "0", "1", "--epochs", "1",
                                       "--samples", "2", "--depth", "3", "--strings", "2"],
    "bench_stacked.py": ["--seeds", "1", "2", "--steps", "2", "--batch", "4", "--length", "5", "--device", "cpu"],
    "bench_sweep.py": ["--points", "2", "--epochs", "2", "--hidden", "8", "--jobs", "2", "--overhead-runs", "2", "--no-ray"],
    "bench_transformer_zoo.py": ["--tasks", "tomita1", "--positionals", "none", "--seeds", "0", "--set", "train.epochs=1",
                                 "--set", "train.early_checkpoints=0", "--set", "probe.depth=4", "--test-length", "12",
                                 "--strings", "8", "--work", "{tmp}"],
}


def test_every_benchmark_has_a_smoke_run():
    assert sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py")) == sorted(SMOKE)


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs(script, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in SMOKE[script]]  # trained runs go to a temporary folder
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "a benchmark prints its figures"

"""Drawing a run's figures leaves the caller's matplotlib alone (rnnautomata.plotting).

Before rnnautomata.plotting, several modules called ``matplotlib.use("Agg")`` when drawing (one at
import), so after any run in a notebook ``plt.show()`` showed nothing. These tests run real studies
in a fresh interpreter whose user picked a backend, and check that the backend is still theirs, that
pyplot was never imported on their behalf, and that no figure was left open in pyplot's list.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnautomata.plotting import colours, default_colours, subplots
from tests.test_measures_report import CLASSIFICATION, TRANSIENT_RIDGE


def _fresh(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("study", [TRANSIENT_RIDGE, CLASSIFICATION], ids=["transient_ridge", "icl_classification"])
def test_a_run_with_figures_keeps_the_users_backend_and_pyplot_untouched(tmp_path, study):
    (tmp_path / "study.toml").write_text(study)
    out = _fresh("""
        import sys, matplotlib
        matplotlib.use("svg")                       # the user's choice
        from rnnautomata.cli import main
        assert main(["--threads", "1", "run", "study.toml", "--out", "run", "--quiet"]) == 0
        figures = sorted(p.name for p in __import__("pathlib").Path("run/figures").iterdir())
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules, len(figures))
        """, tmp_path)
    backend, pyplot_imported, n_figures = out.split()[-3:]
    assert backend == "svg"
    assert pyplot_imported == "False"
    assert int(n_figures) >= 2          # the run did draw (png + svg)


def test_pyplot_figure_list_stays_empty_when_the_user_has_pyplot(tmp_path):
    (tmp_path / "study.toml").write_text(TRANSIENT_RIDGE)
    out = _fresh("""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        from rnnautomata.cli import main
        assert main(["--threads", "1", "run", "study.toml", "--out", "run", "--quiet"]) == 0
        print(matplotlib.get_backend(), len(plt.get_fignums()))
        """, tmp_path)
    assert out.split()[-2:] == ["svg", "0"]


def test_subplots_and_colours_match_pyplot_and_the_colour_map():
    import matplotlib

    fig, axes = subplots(2, 3, figsize=(6, 4), sharex=True)
    assert axes.shape == (2, 3) and len(fig.axes) == 6
    assert tuple(fig.get_size_inches()) == (6.0, 4.0)
    assert axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[1, 2])
    fig, ax = subplots(constrained_layout=True)
    assert fig.get_layout_engine() is not None and hasattr(ax, "plot")
    assert colours("viridis", [0.0, 1.0]) == [tuple(matplotlib.colormaps["viridis"](v)) for v in (0.0, 1.0)]
    assert len(colours("tab10", 4)) == 4
    assert default_colours() == list(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])

"""The documentation site builds with `mkdocs build --strict` (skipped without the [docs] extra)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ["index.html", "guide/index.html", "api/run/index.html", "api/automata/index.html"]:
        assert (site / page).is_file(), page
    # the API reference is generated from the docstrings, not empty headings
    assert "merges" in (site / "api/run/index.html").read_text()
    assert "equivalent" in (site / "api/automata/index.html").read_text()


def test_readme_links_stay_inside_the_repository():
    """Every relative link in README.md names a file of this repository (it is read from a clone)."""
    import re

    text = (ROOT / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t and not t.startswith("#")]
    assert links, "README.md has no relative links to check"
    for target in links:
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT.resolve()), f"README.md links outside the repository: {target}"
        assert path.exists(), f"README.md links to a missing file: {target}"
    assert "../shared" not in text

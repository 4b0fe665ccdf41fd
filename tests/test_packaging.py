"""What a user installing or citing the project relies on: the citation file GitHub reads
agrees with the installed package's metadata."""

import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def test_citation_file_has_the_fields_github_reads_and_the_package_version():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    package = metadata("attnstudy")
    assert citation["cff-version"] == "1.2.0"
    assert {"message", "title", "authors", "version", "license"} <= citation.keys()
    assert citation["version"] == package["Version"]
    assert citation["license"] == package["License"]
    assert all("name" in a or "family-names" in a for a in citation["authors"])


def test_core_count_works_where_the_os_has_no_affinity_set(monkeypatch):
    """macOS has no os.sched_getaffinity: `study run` without --threads must not crash."""
    import os

    from attnstudy.provenance import usable_cores

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cores() == 8


def test_the_analysis_installs_under_the_project_namespace_only(tmp_path):
    """Outside the checkout, the report code imports as attnstudy.analysis and no generic
    top-level `analysis` package exists; the installed packages' requirements all hold."""

    def python(code: str) -> subprocess.CompletedProcess:
        run = [sys.executable, "-c", code]
        return subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert "No module named 'analysis'" in python("import analysis").stderr
    found = python("import attnstudy.analysis.report as r; print(r.TEMPLATES.is_dir())")
    assert found.stdout.strip() == "True", found.stderr
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout

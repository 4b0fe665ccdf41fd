"""What a user installing or citing the project relies on: the citation file GitHub reads
agrees with the installed package's metadata."""

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

"""The README cannot drift from the code: every make target, command-line option, file and
link it names exists."""

import argparse
import re
from pathlib import Path

from attnstudy.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
GENERATED = ("runs/", "reports/", "results/", ".venv/")  # written by the commands themselves


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def cli_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of the parser and of all its subcommands."""
    options = {s for action in parser._actions for s in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options |= cli_options(sub)
    return options


def test_every_make_target_named_exists():
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README))
    assert named, "the README names no make target"
    assert named <= make_targets(), f"no such make target: {sorted(named - make_targets())}"


def test_every_attnstudy_option_named_exists():
    other_tools = ("mlflow server", "apt-get", "createuser", "pip ")
    lines = [
        line
        for line in README.splitlines()
        if "attnstudy " in line and not any(tool in line for tool in other_tools)
    ]
    named = {o for line in lines for o in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line)}
    missing = named - cli_options(build_parser())
    assert not missing, f"options the CLI lacks: {sorted(missing)}"


def test_every_repository_path_named_exists():
    top = ("study/", "src/", "analysis/", "tests/", "docs/", ".ci/")
    named = {p for p in re.findall(r"`([^`\s]+)`", README) if p.startswith(top)}
    named |= {p for p in re.findall(r"\]\(([^)#\s]+)\)", README) if "://" not in p}
    named = {p.rstrip(",.") for p in named if not p.startswith(GENERATED)}
    missing = sorted(p for p in named if "<" not in p and not any(ROOT.glob(p)))
    assert not missing, f"paths the repository lacks: {missing}"

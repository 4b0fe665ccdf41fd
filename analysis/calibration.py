"""The calibration table: for each study, task and architecture, the training budget its
preset gave (steps, learning rate, batch, warm-up, model size) and how many of the runs
that could solve their task learned the training lengths (``effects.competent``: exact
match at the longest training length at least 0.95), with the steps they needed. Built from
logged runs only, so
a preset's budget is justified by measurements, and the variants that fell short are
named.

The file has one section per study. A run rewrites the sections of the studies it reads
and keeps the others as they are, so one preset run again updates its own rows only.

    python -m attnstudy.analysis.calibration quick modern   # writes docs/calibration.md
    python -m attnstudy.analysis.calibration quick@sqlite:////elsewhere/mlflow.db modern
    python -m attnstudy.analysis.calibration full@results/estimate-full.csv  # estimate --csv
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from attnstudy.analysis.aggregate import ok_runs
from attnstudy.analysis.effects import COMPETENCE_TEXT, competent
from attnstudy.analysis.load import StudyError, load_study
from attnstudy.analysis.record import trained_at
from attnstudy.schema import ID_SEQ_ACC, STEPS_TO_95
from attnstudy.tracking_check import default_tracking_uri

OUT = Path("docs/calibration.md")
BUDGET = ("d_model", "n_layers", "train_max_len", "steps", "lr", "batch_size", "warmup_steps")
VARIANT = ("position", "score", "randomized", "heads")
HEADER = (
    "| task | arch | d_model × layers | train lengths | steps (max) | lr | batch "
    "| warm-up | competent / runs | median steps to 95% (max) | not competent |"
)
INTRO = f"""\
# Calibration: steps to competence

Written by `python -m attnstudy.analysis.calibration` (`make calibration`), one section per study,
from the runs logged in MLflow or, for a preset too large to run here, from the sample
`attnstudy study estimate --csv` trained. A run is competent when its {COMPETENCE_TEXT}
(sections written before 2026-12-06 used the mean exact match over the training lengths);
only cells that can solve their task count. Training stops
early once validation exact match reaches 1.0, so a budget is a cap: the steps a run
needed are its steps to 95%. Regenerate it; do not edit it: a run rewrites the sections
of the studies it reads and keeps the others.
"""


def solvable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs of cells that can solve their task (``solvable`` false: C6 only)."""
    ok = ok_runs(runs, ID_SEQ_ACC)
    return ok[ok["solvable"].fillna(True).astype(bool)] if "solvable" in ok else ok


def budget_rows(runs: pd.DataFrame) -> list[dict]:
    """One row per (task, arch, budget) of ``runs``: its competence and steps to it."""
    runs = solvable_runs(runs)
    keys = ["task", "arch", *[c for c in BUDGET if c in runs]]
    groups = runs.groupby(keys)
    return [_row(dict(zip(keys, key, strict=True)), group) for key, group in groups]


def _row(budget: dict, group: pd.DataFrame) -> dict:
    learned = group[competent(group)]
    return budget | {
        "runs": len(group),
        "competent": len(learned),
        "median_steps_to_95": learned[STEPS_TO_95].median(),
        "max_steps_to_95": learned[STEPS_TO_95].max(),
        "short": _short_variants(group),
    }


def _short_variants(group: pd.DataFrame) -> str:
    """The variants with runs below the bar, as 'name k/n' (k runs short of n)."""
    varying = [c for c in VARIANT if c in group and group[c].nunique() > 1]
    parts = []
    for key, runs in group.groupby(varying, sort=True) if varying else [((), group)]:
        short = int((~competent(runs)).sum())
        if short:
            label = "·".join(_label(c, v) for c, v in zip(varying, _tuple(key), strict=True))
            parts.append(f"{label or 'all'} {short}/{len(runs)}")
    return ", ".join(parts) or "none"


def _tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _label(column: str, value) -> str:
    if column == "randomized":
        return "randomized" if bool(value) else "plain"
    return f"h{value}" if column == "heads" else str(value)


def section(study: str, runs: pd.DataFrame, source: str = "Runs logged in MLflow") -> str:
    """The calibration section of one study: where its runs come from, then its rows."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {study}",
        "",
        f"{source}: trained at {trained_at(runs)}; read on {stamp}.",
        "",
        HEADER,
        "|" + "---|" * (HEADER.count("|") - 1),
        *(_line(r) for r in budget_rows(runs)),
    ]
    return "\n".join(lines) + "\n"


def sections_of(text: str) -> dict[str, str]:
    """The study sections of a calibration file, by study name, in file order."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): "## " + part.strip() + "\n" for part in parts}


def document(old: str, new: dict[str, str]) -> str:
    """``old``'s sections with those of ``new`` in their place (new studies last)."""
    sections = sections_of(old) | new
    return INTRO + "".join("\n" + text for text in sections.values())


def _line(r: dict) -> str:
    rate = f"{r['competent']}/{r['runs']} ({r['competent'] / r['runs']:.0%})"
    steps = "–"
    if r["competent"]:
        steps = f"{r['median_steps_to_95']:.0f} ({r['max_steps_to_95']:.0f})"
    return (
        f"| {r['task']} | {r['arch']} | {r.get('d_model', '?')} × "
        f"{r.get('n_layers', '?')} | 1–{r.get('train_max_len', '?')} | {r.get('steps', '?')} "
        f"| {r.get('lr', '?')} | {r.get('batch_size', '?')} | {r.get('warmup_steps', '?')} "
        f"| {rate} | {steps} | {r['short']} |"
    )


def _located(spec: str, default_uri: str) -> tuple[str, str]:
    """'NAME@URI' → (NAME, URI); 'NAME' → (NAME, the default store)."""
    name, _, uri = spec.partition("@")
    return name, uri or default_uri


def read_section(spec: str, default_uri: str) -> tuple[str, str]:
    """The study named by ``spec`` and its section, read from an MLflow store or, for a
    ``.csv``, from the sample `attnstudy study estimate --csv` wrote."""
    name, uri = _located(spec, default_uri)
    if not uri.endswith(".csv"):
        return name, section(name, load_study(name, uri).runs)
    try:
        sample = pd.read_csv(uri)
    except OSError as error:
        raise StudyError(f"no estimate sample at {uri} ({error.strerror or error})") from None
    return name, section(name, sample, f"A sample timed by `attnstudy study estimate` ({uri})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "studies", nargs="+", help="study names, e.g. quick modern; NAME@URI reads another store"
    )
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        default = args.tracking_uri or default_tracking_uri()  # before any store is opened
        sections = dict(read_section(spec, default) for spec in args.studies)
    except StudyError as error:
        print(f"calibration: {error}", file=sys.stderr)
        return 2
    old = args.out.read_text() if args.out.exists() else ""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(document(old, sections))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The benchmark's outputs: a Markdown table (with the machine and its load), a JSON file,
and one run in the MLflow experiment `bench`."""

from __future__ import annotations

import json
import math
import os
import re
from itertools import groupby
from pathlib import Path

from attnstudy.bench.rows import Row
from attnstudy.schema import GOALS_MET

EXPERIMENT = "bench"
COLUMNS = ("what", "value", "reference", "ratio", "goal", "met", "note")


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def met_text(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def table_line(r: Row) -> str:
    cells = (
        r.what,
        f"{fmt(r.value)} {r.unit}",
        fmt(r.reference),
        fmt(r.ratio),
        r.goal or "—",
        met_text(r.met),
        r.note,
    )
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def table(rows: list[Row]) -> list[str]:
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] + [
        table_line(r) for r in rows
    ]


def machine_lines(meta: dict) -> list[str]:
    m = meta["machine"]
    quick = " (--quick: tiny shapes, a smoke run, not for reading)" if meta["quick"] else ""
    return [
        f"Machine: {m['cpu']}, {m['cores']} cores available, torch {m['torch']} "
        f"(CPU, fp32), {meta['threads']} torch thread(s), Python {m['python']}.",
        f"Load average (1 min) before / after: {meta['load_before']} / {meta['load_after']}; "
        f"the run took {meta['seconds']:.0f} s{quick}.",
    ]


def summary_lines(rows: list[Row]) -> list[str]:
    missed = [r for r in rows if r.goal and not r.met]
    lines = [f"Goals met: {goals_met(rows)}."]
    for r in missed:
        lines.append(f"- missed: {r.section[3:]}: {r.what}: ratio {fmt(r.ratio)}, goal {r.goal}")
    return lines


def goals_met(rows: list[Row]) -> str:
    goals = [r for r in rows if r.goal]
    return f"{sum(bool(r.met) for r in goals)} of {len(goals)}"


def markdown(rows: list[Row], meta: dict) -> str:
    lines = ["# Benchmarks", "", *machine_lines(meta), "", *summary_lines(rows)]
    for section, group in groupby(rows, key=lambda r: r.section):
        lines += ["", f"## {section}", "", *table(list(group))]
    return "\n".join(lines) + "\n"


def write_files(rows: list[Row], meta: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    payload = {"meta": meta, "rows": [r.to_dict() for r in rows]}
    json_path.write_text(json.dumps(_finite(payload), indent=1) + "\n")
    md_path.write_text(markdown(rows, meta))
    return json_path, md_path


def _finite(x):
    """JSON has no NaN: NaN → null, recursively."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def metric_key(r: Row) -> str:
    """An MLflow-safe metric name: section number / what."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", f"s{r.section[0]}/{r.what}")[:240]


def metrics(rows: list[Row]) -> dict[str, float]:
    out = {}
    for r in rows:
        for suffix, value in (("", r.value), (" ratio", r.ratio)):
            if value is not None and not math.isnan(value):
                out[metric_key(r) + suffix] = float(value)
    return out


def log_to_mlflow(uri: str, rows: list[Row], meta: dict, files: tuple[Path, ...]) -> str:
    """One run in experiment `bench`: machine and plan as params, every value and ratio as
    a metric, the JSON and Markdown as artifacts. Returns the run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from attnstudy.tracking import silence

    silence()
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        experiment = found.experiment_id
    else:
        experiment = client.create_experiment(EXPERIMENT, artifact_location(uri))
    run = client.create_run(experiment, run_name="quick" if meta["quick"] else "bench")
    params = {**meta["machine"], "threads": meta["threads"], "quick": meta["quick"]}
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics(rows).items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.set_tag(run.info.run_id, GOALS_MET, goals_met(rows))
    for path in files:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store go beside it, in mlartifacts/bench (runs/mlartifacts for
    the default store); other stores use their own default."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.resolve().parent / "mlartifacts" / EXPERIMENT).as_uri()


def default_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the project's SQLite store runs/mlflow.db under the cwd."""
    from attnstudy.tracking_check import default_tracking_uri

    if "MLFLOW_TRACKING_URI" not in os.environ:
        Path("runs").mkdir(exist_ok=True)
    return default_tracking_uri()

"""The report writer: one study's MLflow runs -> ``reports/<study>/report.html`` (self-contained:
figures embedded as base64 PNG, no scripts, no external resources), ``report.pdf`` (the same
HTML typeset by WeasyPrint through its print stylesheet) and every table as CSV under
``tables/`` beside them, with the tidy frames; both reports are logged as artifacts of the
study's parent run.

The report answers first: the question, the headline figure, one table per axis and the
claims' verdicts; the figures, the claims' evidence, the comparisons and the methods follow;
the long tables close it, in an appendix.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd
from mlflow.tracking import MlflowClient

from attnstudy.analysis import anchors, modern, tables
from attnstudy.analysis.claims import RULE_VERSION
from attnstudy.analysis.effects import ALPHA, COMPETENCE_TEXT, MIN_SEEDS
from attnstudy.analysis.figures_catalog import HEADLINE, ReportFigure, make_figures
from attnstudy.analysis.importance import report_importance
from attnstudy.analysis.load import Study, load_study, save_frames
from attnstudy.analysis.pairwise import METHODS_TEXT
from attnstudy.analysis.record import RESULTS_DIR, write_record
from attnstudy.analysis.seeds import SEED_CI_TEXT
from attnstudy.analysis.tables import Table
from attnstudy.analysis.verdicts import DECISION_RULE, Verdict, evaluate_claims, holm_family
from attnstudy.redact import redact
from attnstudy.schema import DESCRIPTION

TEMPLATES = Path(__file__).with_name("templates")
MLFLOW_UI = "http://127.0.0.1:5000"
SECTIONS = {  # anchor: (number, title), in the order of the report
    "question": ("1.", "The question"),
    "headline": ("2.", "Exact match against length"),
    "by-axis": ("3.", "Results by axis"),
    "claims": ("4.", "Claims: verdicts"),
    "completeness": ("5.", "Completeness"),
    "figures": ("6.", "Figures"),
    "evidence": ("7.", "Claims: rules and evidence"),
    "compare": ("8.", "How this compares"),
    "methods": ("9.", "Methods"),
    "appendix": ("Appendix.", "Long tables"),
    "appendix-configurations": ("A.", "Summary per configuration"),
    "appendix-cost": ("B.", "Cost"),
    "appendix-statistics": ("C.", "Pairwise statistics"),
    "appendix-runs": ("D.", "Runs"),
}
MODERN_SECTION = ("modern", "Length-aware variants beside the classic ones")  # after claims
SELECTION_RULE = (
    "Model selection uses in-distribution data only: every val_every steps the model is "
    "validated on fresh examples of the training lengths (train_min_len..train_max_len, a "
    "fixed validation seed) and the checkpoint with the best validation exact match is kept; "
    "early stopping (patience, stop_at_val_acc) reads the same validation. No longer "
    "sequence is seen before the final evaluation, which decodes greedily eval_samples fresh "
    "examples of every length 1..eval_max_len, the same examples for every variant of a "
    "seed (so comparisons can be paired)."
)
INTERVAL = re.compile(r"\[[+−-]?\d[\d.]*, [+−-]?\d[\d.]*\]")
NUMERIC = re.compile(r"^[-+−–]?[\d.,]+( \[|$| \(n = 1\)$)|^–$")  # cells aligned right
VERDICT_CLASS = {
    "supported": "ok",
    "refuted": "bad",
    "no meaningful difference": "mid",
    "inconclusive": "none",
}
AXIS_PHRASES = {
    "position": "the positional encoding",
    "score": "the score function",
    "heads": "the number of heads",
    "arch": "the architecture",
}
CLAIMS_IN_SHORT = (
    "One primary effect E = A − B per claim, each seed reduced to one difference, with its "
    "95% interval over seeds and an exact sign-flip p (min p: the smallest p its seeds "
    f"allow): supported or refuted when p (Holm) < {ALPHA} with the claimed or the other "
    "sign; no meaningful difference when an equivalence test puts E within ± the claim's "
    "smallest effect Δ; inconclusive otherwise (with about how many seeds would decide it) "
    f"or with fewer than {MIN_SEEDS} seeds; out-of-distribution comparisons keep only "
    f"competent runs ({COMPETENCE_TEXT}) on both sides. Rule version {RULE_VERSION}."
)
CLAIM_COLUMNS = {  # claims.csv: column -> key of the claim row, in the claim table's order
    "claim": "claim",
    "statement": "text",
    "verdict": "verdict",
    "reason": "note",
    "primary metric": "metric",
    "effect A − B [95% CI]": "effect",
    "p": "p",
    "p (Holm)": "p_holm",
    "min p": "min_p",
    "smallest effect Δ": "smallest_effect",
    "p (equivalence)": "p_equivalence",
    "seeds": "seeds",
    "seeds needed": "seeds_needed",
    "runs kept": "kept",
    "runs excluded": "excluded",
    "exclusions": "exclusions",
    "rule": "rule",
    "secondary evidence": "evidence",
    "figure": "figure_label",
}


def build_report(
    study: str, out_dir: Path | str | None = None, tracking_uri: str | None = None
) -> tuple[Path, Path | None]:
    """Write report.html, report.pdf, tables/*.csv and the tidy CSVs into ``out_dir``
    (default reports/<study>), log the reports and tables to the study's parent run, and
    write the dated record results/<study>.md (into ``out_dir`` when one is given); return
    the reports' paths (the PDF's None when WeasyPrint could not run). Raises
    ``analysis.load.StudyError`` when the study has no trial runs."""
    data = load_study(study, tracking_uri)
    out = Path(out_dir) if out_dir is not None else Path("reports") / study
    save_frames(data, out)
    figures = make_figures(data)
    verdicts = evaluate_claims(data.runs, data.lengths, data.positions)
    context = report_context(data, figures, verdicts)
    write_tables(out, report_tables(context))
    html_path, pdf_path = out / "report.html", out / "report.pdf"
    html_path.write_text(render_html(context), encoding="utf-8")
    pdf_written = write_pdf(html_path, pdf_path)
    log_report(data, [html_path, *([pdf_path] if pdf_written else [])], out / "tables")
    write_record(data, verdicts, RESULTS_DIR if out_dir is None else out)
    return html_path, pdf_path if pdf_written else None


def report_context(data: Study, figures: list[ReportFigure], verdicts: list[Verdict]) -> dict:
    """Everything the template shows, as plain values and Tables."""
    run_url = _study_meta(data)["run_url"]
    fixed, varied = tables.settings(data.runs, list(data.param_names))
    completeness = tables.completeness(data.runs, data.attempts, data.grid_size, data.grid)
    completeness |= {k: _linked(completeness[k], run_url) for k in ("unfinished", "bad")}
    beside = modern.modern_table(data.runs)
    return {
        "study": _study_meta(data),
        "sections": numbered_sections(beside is not None),
        "question": question(data),
        "seed_ci": SEED_CI_TEXT,
        "headline": next((f for f in figures if f.key == HEADLINE), None),
        "axes": [tables.axis_table(data.runs, axis) for axis in tables.AXES],
        "importance": report_importance(data.runs, list(data.param_names)),
        "claims": [claim_row(v, figures) for v in verdicts],
        "claims_in_short": CLAIMS_IN_SHORT,
        "modern": beside,
        "modern_names": modern.modern_names(data.runs),
        "claims_rule": DECISION_RULE,
        "holm_family": holm_family(verdicts),
        "completeness": completeness,
        "figures": [f for f in figures if f.key != HEADLINE],
        "comparisons": [_comparison(block) for block in anchors.comparisons(data.runs)],
        "methods": _methods(data, fixed, varied),
        "appendix": {
            "configurations": tables.configuration_table(data.runs),
            "cost": tables.cost_table(data.runs),
            "statistics": tables.statistics_tables(data.runs),
            "runs": _linked(tables.attempts_table(data.attempts, data.runs), run_url),
        },
    }


def numbered_sections(with_modern: bool) -> dict:
    """SECTIONS, and when the study ran a length-aware variant the section setting them
    beside the classic ones, right after the claims (the numbered sections after it move
    down by one)."""
    if not with_modern:
        return SECTIONS
    keys = list(SECTIONS)
    at = keys.index("claims") + 1
    titled = [*list(SECTIONS.items())[:at], (MODERN_SECTION[0], ("", MODERN_SECTION[1]))]
    titled += list(SECTIONS.items())[at:]
    out, n = {}, 0
    for key, (number, title) in titled:
        if key == MODERN_SECTION[0] or number.removesuffix(".").isdigit():
            n += 1
            number = f"{n}."
        out[key] = (number, title)
    return out


def question(data: Study) -> str:
    """The study's question in one paragraph, with its tasks, lengths and axes."""
    runs = data.runs
    first = int(runs["train_min_len"].min()) if "train_min_len" in runs else 1
    varied = [phrase for axis, phrase in AXIS_PHRASES.items() if runs[axis].nunique() > 1]
    design = (
        f"varies {_and(varied)} and trains every combination" if varied else "trains one variant"
    )
    return (
        "Which attention mechanisms let a model trained on inputs of length "
        f"{first}–{int(runs['train_max_len'].max())} solve the same task on longer ones, "
        f"up to length {int(runs['eval_max_len'].max())}? This study {design} on "
        f"{_and(sorted(runs['task'].unique()))} with {runs['seed'].nunique()} seed(s) each, "
        "and measures exact match, the fraction of sequences fully correct, at every length; "
        "lengths beyond training are out of distribution (OOD)."
    )


def _and(items: list[str]) -> str:
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def render_html(context: dict) -> str:
    return templates().get_template("report.html.j2").render(**context)


def templates() -> jinja2.Environment:
    """The report's Jinja templates (``templates/``), autoescaped, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["numeric"] = lambda value: bool(NUMERIC.match(str(value)))
    env.filters["unbroken"] = unbroken
    return env


def unbroken(value) -> str:
    """``value`` with every interval '[low, high]' in it joined by a no-break space: a
    narrow column may put an estimate and its interval on two lines, never split the
    interval itself ('[0.557,' / '0.570]')."""
    return INTERVAL.sub(lambda m: m[0].replace(" ", "\u00a0"), str(value))


def report_tables(context: dict) -> list[Table]:
    """Every table the report shows, the claims included."""
    claims = [{c: row[k] for c, k in CLAIM_COLUMNS.items()} for row in context["claims"]]
    completeness = context["completeness"]
    methods, appendix = context["methods"], context["appendix"]
    return [
        *context["axes"],
        *([context["importance"]] if context["importance"] is not None else []),
        Table("claims", "Claims", list(CLAIM_COLUMNS), claims),
        *([context["modern"]] if context["modern"] is not None else []),
        completeness["unfinished"],
        completeness["bad"],
        *(block["table"] for block in context["comparisons"]),
        methods["varied"],
        methods["fixed"],
        appendix["configurations"],
        appendix["cost"],
        *appendix["statistics"],
        appendix["runs"],
    ]


def write_tables(out: Path, shown: list[Table]) -> None:
    """Each table as ``out/tables/<key>.csv``, its displayed values."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for table in shown:
        pd.DataFrame(table.rows, columns=table.columns).to_csv(out / table.csv, index=False)


PANGO_MISSING = (
    "attnstudy: report.pdf not written: WeasyPrint could not load ({error}); it needs Pango: "
    "install it (Debian/Ubuntu: apt-get install libpango-1.0-0 libpangoft2-1.0-0; macOS: "
    "brew install pango) and run the report again; report.html is written"
)


def write_pdf(html: Path, pdf: Path) -> bool:
    """The HTML typeset for print (its ``@page`` and ``@media print`` rules) by WeasyPrint:
    the same sections, figures, tables and links; page numbers and a table of contents.
    WeasyPrint is imported here, so a machine without Pango still gets the HTML: one line
    says what to install, and False comes back."""
    try:
        import weasyprint
    except (OSError, ImportError) as error:  # OSError: WeasyPrint found no Pango
        print(PANGO_MISSING.format(error=str(error).splitlines()[0]), file=sys.stderr)
        return False
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    weasyprint.HTML(filename=html).write_pdf(pdf)
    return True


def log_report(data: Study, paths: list[Path], folder: Path) -> None:
    """Attach the reports and their tables to the study's parent run (nothing to do
    without one)."""
    run_id = data.parent.get("run_id")
    if run_id is None:
        return
    client = MlflowClient(tracking_uri=data.tracking_uri)
    for path in paths:
        client.log_artifact(run_id, str(path))
    client.log_artifacts(run_id, str(folder), folder.name)


def _study_meta(data: Study) -> dict:
    experiment = f"{MLFLOW_UI}/#/experiments/{data.experiment_id}"
    return {
        "name": data.name,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tracking_uri": redact(data.tracking_uri),
        "experiment_id": data.experiment_id,
        "experiment_url": experiment,
        "parent_run_id": data.parent.get("run_id", "none"),
        "run_url": f"{experiment}/runs/",
        "description": data.parent.get("tags", {}).get(DESCRIPTION, ""),
    }


def _linked(table: Table, run_url: str) -> Table:
    return replace(table, links={"run id": run_url})


def _comparison(block: dict) -> dict:
    """A published comparison (``analysis.anchors``) with its rows as a Table."""
    key = "compare_" + re.sub(r"[^a-z0-9]+", "_", block["title"].lower()).strip("_")[:40]
    return block | {"table": Table(key, block["title"], block["columns"], block["rows"])}


def claim_row(verdict: Verdict, figures: list[ReportFigure]) -> dict:
    """What the claim table and the claim's evidence show: the verdict (with the reason when
    inconclusive), the primary effect with its seed-level CI, p and Holm-adjusted p, seeds
    per side, runs kept and excluded, the secondary evidence and the claim's figure."""
    shown = {f.key: f for f in figures}
    figure = shown.get(verdict.figure)
    e = verdict.effect
    estimate, ci = ("", "")  # E = A − B and its interval, signed; none when untested
    if e.tested:
        estimate, ci = f"{e.estimate:+.3f}", f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}]"
    return {
        "claim": verdict.claim,
        "text": verdict.text,
        "verdict": verdict.label,
        "verdict_class": VERDICT_CLASS.get(verdict.verdict, "none"),
        "note": verdict.reason,
        "rule": verdict.rule,
        "metric": verdict.metric,
        "effect": f"{estimate} {ci}" if e.tested else "–",
        "estimate": estimate,
        "ci": ci,
        "effect_text": e.text(verdict.metric),
        "p": tables.fmt(e.p, 4),
        "p_holm": tables.fmt(verdict.p_holm, 4),
        "min_p": tables.fmt(e.min_p, 4),
        "smallest_effect": f"{verdict.smallest_effect:g}",
        "p_equivalence": tables.fmt(verdict.p_equivalence, 4),
        "seeds": e.n_seeds,
        "seeds_needed": verdict.seeds_needed if verdict.verdict == "inconclusive" else "",
        "kept": e.n_kept,
        "excluded": e.n_excluded,
        "exclusions": e.exclusions(),
        "evidence": verdict.evidence,
        "figure_key": figure.key if figure else None,
        "figure_label": f"Figure {figure.number}" if figure else "no figure (no runs for it)",
    }


def _methods(data: Study, fixed: Table, varied: Table) -> dict:
    logged = sorted(c for c in data.runs if c.startswith("version."))  # frames' order varies
    versions = {c: sorted(data.runs[c].dropna().unique()) for c in logged}
    return {
        "fixed": fixed,
        "varied": varied,
        "seeds": ", ".join(str(s) for s in sorted(data.runs["seed"].dropna().unique())),
        "selection": SELECTION_RULE,
        "statistics": METHODS_TEXT,
        "versions": {k.removeprefix("version."): ", ".join(v) for k, v in versions.items()},
        "commits": sorted(data.runs["git_commit"].dropna().unique()),
    }

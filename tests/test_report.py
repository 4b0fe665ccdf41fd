"""The report, built from a small real study (real training, real SQLite MLflow store) and
checked as a reader would: opened in headless Chromium, the PDF read back as text and
rendered page by page."""

from __future__ import annotations

import html as html_lib
import re
import shutil
import sqlite3
import subprocess
import sys
import unicodedata
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import weasyprint
from chromium import ensure, open_page
from frames import BASE_RUN, modern_runs
from mlflow.tracking import MlflowClient
from PIL import Image
from tiny_study import grid_key, make_study

from attnstudy.analysis.claims import CLAIMS as CLAIMS_SPEC
from attnstudy.analysis.effects import Effect
from attnstudy.analysis.figures_catalog import FIGURES, attention_examples
from attnstudy.analysis.load import Study, StudyError, load_study
from attnstudy.analysis.modern import modern_names, modern_table
from attnstudy.analysis.pairwise import METHODS_TEXT
from attnstudy.analysis.report import (
    CLAIM_COLUMNS,
    SECTIONS,
    SELECTION_RULE,
    _methods,
    claim_row,
    numbered_sections,
    templates,
    write_pdf,
)
from attnstudy.analysis.variants import fact
from attnstudy.analysis.verdicts import DECISION_RULE, VERDICTS, Verdict
from attnstudy.cli import main
from attnstudy.positions import POSITIONS
from attnstudy.registries import declared_facts
from attnstudy.schema import (
    ATTN_SHARPNESS,
    GRID_ARTIFACT,
    ID_SEQ_ACC,
    NEAR_OOD_SEQ_ACC,
    OOD_SEQ_ACC,
    PEAK_MEM_MB,
    ROLE,
    STUDY_ROLE,
    TRAIN_LOSS,
    VAL_SEQ_ACC,
    VARIANT_FACTS,
)

STUDY = "tiny-report"
DECODER = [  # two encodings x two seeds at 2 heads, and 1 head for one encoding
    {"arch": "decoder", "position": p, "heads": h, "seed": s}
    for p, h in (("sinusoidal", 2), ("learned", 2), ("sinusoidal", 1))
    for s in (0, 1)
]
RNN = [{"arch": "rnn", "position": "none", "heads": 1, "seed": s} for s in (0, 1)]
DIVERGED = (  # logged without training; they make the per-configuration table long
    {"arch": "decoder", "position": "none", "heads": 1, "seed": 0},
    *(
        {"arch": "decoder", "position": p, "score": s, "heads": 4, "seed": 0}
        for p in POSITIONS
        for s in ("dot", "cosine", "additive")
    ),
)
NEVER_RUN = [{"arch": "decoder", "position": "none", "heads": s + 1, "seed": 1} for s in (0, 1)]
CLAIMS = list(CLAIMS_SPEC)
LONG = 20  # rows: a table longer than this comes after the claim verdicts
MARGIN_PT = 14 / 25.4 * 72  # the stylesheet's left and right page margins
PATIENCE = 600  # s; bounds a hang only: Chromium 2.2 s, pdftoppm 0.3 s measured at load 6


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A half-finished study: 8 trained trials, 22 diverged, one killed attempt (later
    rerun), two grid points never run; the report built through the CLI."""
    root = tmp_path_factory.mktemp("study")
    grid = [*DECODER, *RNN]
    uri = make_study(root, STUDY, grid, diverged=DIVERGED, killed=(DECODER[0],))
    client = MlflowClient(uri)
    parent = load_study(STUDY, uri).parent["run_id"]
    keys = [grid_key(p) for p in (*grid, *DIVERGED, *NEVER_RUN)]
    client.log_dict(parent, keys, GRID_ARTIFACT)
    out = root / "report"
    assert main(["report", "--study", STUDY, "--tracking-uri", uri, "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    return {"uri": uri, "out": out, "html": html, "parent": parent, "client": client}


@pytest.fixture(scope="module")
def pdf_text(study):
    """The PDF's text without the page footers, so a paragraph reads on across pages."""
    footer = rf" ?attnstudy report: {STUDY} page \d+ of \d+"
    return re.sub(footer, "", read_pdf(study["out"] / "report.pdf"))


def read_pdf(path) -> str:
    """The PDF's text as pdftotext extracts it, whitespace collapsed (ligatures unfolded)."""
    pdftotext = ensure("pdftotext", "poppler-utils")
    out = subprocess.run(
        [pdftotext, str(path), "-"], capture_output=True, check=True, timeout=PATIENCE
    )
    return " ".join(unicodedata.normalize("NFKC", out.stdout.decode()).split())


def holds(text: str, fragment: str) -> bool:
    """Whether ``text`` holds ``fragment``, ignoring whitespace and hyphens (a PDF breaks lines
    at spaces, hyphens and slashes, and pdftotext drops a hyphen that ends a line), both
    NFKC-normalised as ``read_pdf`` leaves the PDF's text (½ reads 1⁄2)."""
    fragment = unicodedata.normalize("NFKC", fragment)
    return re.sub(r"[\s-]+", "", fragment) in re.sub(r"[\s-]+", "", text)


def visible_text(fragment: str) -> str:
    """An HTML fragment as the text a reader sees, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def words_outside_margins(path) -> list[tuple[int, str]]:
    """(page, word) of every word that reaches into the left or right page margin."""
    pdftotext = ensure("pdftotext", "poppler-utils")
    out = subprocess.run(
        [pdftotext, "-bbox", str(path), "-"], capture_output=True, check=True, timeout=PATIENCE
    ).stdout.decode()
    outside, page, width = [], 0, 0.0
    for line in out.splitlines():
        if found := re.search(r'<page width="([\d.]+)"', line):
            page, width = page + 1, float(found[1])
        elif found := re.search(
            r'xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)".*>(.*)</word>', line
        ):
            left, right = float(found[1]), float(found[2])
            if left < MARGIN_PT - 1 or right > width - MARGIN_PT + 1:
                outside.append((page, found[3]))
    return outside


JS_TABLES = """Array.from(document.querySelectorAll('table'), t => ({
  id: t.id,
  rows: t.tBodies.length ? t.tBodies[0].rows.length : t.rows.length,
  beforeClaims: !!(t.compareDocumentPosition(document.querySelector('#table-claims'))
                   & Node.DOCUMENT_POSITION_FOLLOWING),
  shown: t.checkVisibility(),
  cut: t.checkVisibility() && t.scrollWidth > t.parentElement.clientWidth + 1,
}))"""
JS_VERDICTS = "Array.from(document.querySelectorAll('#table-claims .verdict'), v => v.textContent)"
JS_WIDTH = (
    "[document.documentElement.scrollWidth, document.documentElement.clientWidth, innerWidth]"
)


def long_tables_before_claims(tables: list[dict]) -> list[str]:
    return [t["id"] for t in tables if t["rows"] > LONG and t["beforeClaims"]]


def test_report_opens_offline_with_every_image_loaded_and_no_console_error(study):
    browser = ensure("chromium", "chromium")
    page = open_page(study["out"] / "report.html", browser, timeout=PATIENCE)
    figures = study["html"].count("<figure")
    assert figures >= 9
    assert len(page.images) == figures
    assert all(complete and width > 0 for _, complete, width in page.images), page.images
    assert page.errors == []
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests


def test_browser_check_catches_a_broken_image_and_a_console_error(tmp_path):
    browser = ensure("chromium", "chromium")
    broken = tmp_path / "broken.html"
    broken.write_text('<img alt="gone" src="missing.png"><script>console.error("boom")</script>')
    page = open_page(broken, browser, timeout=PATIENCE)
    assert page.images == [("gone", True, 0)]
    assert any("boom" in e for e in page.errors)


def test_claim_verdicts_come_before_every_long_table_and_nothing_overflows(study):
    browser = ensure("chromium", "chromium")
    evaluate = {"tables": JS_TABLES, "verdicts": JS_VERDICTS, "width": JS_WIDTH}
    page = open_page(study["out"] / "report.html", browser, timeout=PATIENCE, evaluate=evaluate)
    tables, verdicts = page.values["tables"], page.values["verdicts"]
    assert len(verdicts) == len(CLAIMS)
    assert {v.split(" (n = ")[0] for v in verdicts} <= set(VERDICTS)
    long = [t for t in tables if t["rows"] > LONG]
    assert {t["id"] for t in long} >= {"table-configurations", "table-runs"}
    assert long_tables_before_claims(tables) == []
    assert not any(t["shown"] for t in long if t["id"] in ("table-configurations", "table-runs"))
    scroll_width, width, window = page.values["width"]
    assert window == 1024 and scroll_width <= width  # no page-wide scroll on a laptop
    assert [t["id"] for t in tables if t["cut"]] == []  # nor a table wider than its box


def test_order_check_catches_a_long_table_before_the_claims(tmp_path):
    browser = ensure("chromium", "chromium")
    rows = "".join(f"<tr><td>{i}</td></tr>" for i in range(LONG + 1))
    page_path = tmp_path / "bad.html"
    page_path.write_text(
        f'<table id="long"><tbody>{rows}</tbody></table>'
        '<table id="table-claims"><tbody><tr><td>C1</td></tr></tbody></table>'
    )
    page = open_page(page_path, browser, timeout=PATIENCE, evaluate={"tables": JS_TABLES})
    assert long_tables_before_claims(page.values["tables"]) == ["long"]


def test_report_opens_on_the_question_headline_figure_axis_tables_and_claims(study):
    html = study["html"]
    order = ["question", "headline", "by-axis", "claims", "completeness", "figures"]
    order += ["evidence", "compare", "methods", "appendix"]
    positions = [html.index(f'<h2 id="{key}">') for key in order]
    assert positions == sorted(positions)
    headline = html[positions[1] : positions[2]]
    assert 'id="fig-acc_vs_length"' in headline
    axes = html[positions[2] : positions[3]]
    for key in ("by_position", "by_score", "by_heads", "by_arch"):
        assert f'id="table-{key}"' in axes
    appendix = html[positions[-1] :]
    for key in ("configurations", "cost", "runs"):
        assert f'<details class="long-table" id="{key}">' in appendix


def test_every_table_is_a_csv_beside_the_report_with_its_rows(study):
    html, out = study["html"], study["out"]
    tables = re.findall(r'<table id="table-([\w-]+)".*?<tbody>(.*?)</tbody>', html, re.S)
    assert len(tables) >= 10
    for key, body in tables:
        assert f'href="tables/{key}.csv"' in html, key
        csv = pd.read_csv(out / "tables" / f"{key}.csv")
        assert len(csv) == body.count("<tr>"), key


def test_axis_tables_show_ood_exact_match_up_to_2l_and_say_its_range(study):
    by_position = pd.read_csv(study["out"] / "tables" / "by_position.csv")
    assert "OOD exact match (L, 2L]" in by_position.columns
    assert "OOD exact match (every length > L)" not in by_position.columns
    assert "mean over the lengths L &lt; length ≤ 2L" in study["html"]


def test_configuration_table_shows_ood_exact_match_up_to_2l_and_says_over_which_runs(study):
    columns = list(pd.read_csv(study["out"] / "tables" / "configurations.csv").columns)
    at = columns.index("ID exact match max") + 1
    assert columns[at : at + 2] == ["OOD exact match (L, 2L]", "OOD exact match (L, 2L] max"]
    assert "both over every finished run, competent or not" in visible_text(study["html"])


def test_pdf_holds_the_sections_claim_table_rules_methods_and_every_caption(study, pdf_text):
    html = study["html"]
    for number, title in SECTIONS.values():
        assert holds(pdf_text, f"{number} {title}")
    verdicts = pdf_text.split("4. Claims: verdicts")[2].split("5. Completeness")[0]
    for claim in CLAIMS:
        row = html.split(f'<td><a href="#{claim}">{claim}</a></td>')[1].split("</tr>")[0]
        cells = [visible_text(part) for part in row.split("</td>")[:-1]]
        assert len(cells) == 8 and cells[1].startswith(VERDICTS)  # statement, verdict, ...
        for cell in cells:  # pdftotext reads a wrapped table's columns in no fixed order
            assert holds(verdicts, cell), (claim, cell)
        block = html.split(f'<div class="claim" id="{claim}">')[1].split("</div>")[0]
        assert holds(
            pdf_text, visible_text(block.split("<strong>Rule.</strong>")[1].split("</p>")[0])
        )
    methods = pdf_text.split("9. Methods")[2]
    assert holds(methods, SELECTION_RULE) and holds(methods, METHODS_TEXT)
    assert holds(methods, DECISION_RULE)
    holm = re.search(r"Multiple testing.</strong> (.*?)</p>", html, re.S).group(1)
    assert "family" in holm and holds(methods, visible_text(holm))
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)
    assert len(captions) == html.count("<figure")
    for caption in captions:
        assert holds(pdf_text, visible_text(caption))


def test_pdf_pages_are_numbered_listed_in_the_contents_and_none_is_blank(study, tmp_path):
    pdf = study["out"] / "report.pdf"
    pdftoppm = ensure("pdftoppm", "poppler-utils")
    command = [pdftoppm, "-r", "30", "-png", str(pdf), str(tmp_path / "p")]
    subprocess.run(command, check=True, timeout=PATIENCE)
    pages = sorted(tmp_path.glob("p-*.png"))
    text = read_pdf(pdf)
    assert f"page {len(pages)} of {len(pages)}" in text
    assert re.search(r"1\. The question \.{5,}[ .]*1 ", text)  # contents with page numbers
    for path in pages:
        grey = np.asarray(Image.open(path).convert("L"))
        body = grey[: int(grey.shape[0] * 0.9)]  # above the footer's page number
        assert (body < 200).mean() > 0.002, path.name


def test_pdf_embeds_every_figure_and_keeps_text_inside_the_margins(study):
    pdf = study["out"] / "report.pdf"
    pdfimages = ensure("pdfimages", "poppler-utils")
    listing = subprocess.run(
        [pdfimages, "-list", str(pdf)], capture_output=True, check=True, timeout=PATIENCE
    )
    images = listing.stdout.decode().splitlines()[2:]
    assert len(images) >= study["html"].count("<figure")
    assert words_outside_margins(pdf) == []


def test_margin_check_catches_a_table_wider_than_the_page(tmp_path):
    cells = "".join(f"<td style='white-space: nowrap'>column-{i}-wide</td>" for i in range(12))
    path = tmp_path / "wide.pdf"
    weasyprint.HTML(string=f"<table><tr>{cells}</tr></table>").write_pdf(path)
    assert words_outside_margins(path)


def test_html_is_self_contained(study):
    html = study["html"]
    assert not re.search(r"<(script|link|iframe)\b", html)
    assert not re.search(r"""(src|url)\s*[=(]\s*["']?(https?:)?//""", html)
    assert html.count('src="data:image/png;base64,') == html.count("<img")


def test_every_claim_gets_a_verdict_rule_and_evidence(study):
    html = study["html"]
    for claim in CLAIMS:
        block = html.split(f'<div class="claim" id="{claim}">')[1].split("</div>")[0]
        verdict = re.search(r'class="verdict \w+">([^<]+)<', block).group(1)
        assert verdict.split(" (n = ")[0] in VERDICTS
        assert "Rule.</strong>" in block and "Secondary evidence.</strong>" in block
        assert "Primary effect.</strong>" in block and "runs kept" in block
        if verdict.startswith("inconclusive"):
            assert "tested by" in block


def supported_verdict(claim: str = "C4") -> Verdict:
    effect = Effect(
        estimate=0.2,
        ci_low=0.1,
        ci_high=0.3,
        p=0.03125,
        min_p=0.03125,
        mean_a=0.9,
        mean_b=0.7,
        n_seeds=6,
        n_configs=2,
        n_runs=14,
        n_kept=11,
        n_not_ok=1,
        n_incompetent=2,
        seed_diffs=(0.2, 0.21, 0.19, 0.2, 0.22, 0.18),
    )
    spec = CLAIMS_SPEC[claim]
    return Verdict(
        claim=claim,
        text=spec.text,
        rule=spec.rule,
        metric=spec.metric,
        verdict="supported",
        effect=effect,
        p_holm=0.012,
        p_equivalence=1.0,
        smallest_effect=spec.smallest_effect,
        seeds_needed=14,
        evidence="per-form means shown",
        reason="",
        needs=spec.needs,
        figure=spec.figure,
    )


def test_claim_table_row_shows_verdict_metric_effect_seeds_runs_and_evidence_link():
    row = claim_row(supported_verdict(), figures=[])
    table = templates().get_template("_claims.html.j2").module.claim_table([row])
    cells = [visible_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", str(table), re.S)]
    assert cells[:4] == ["C4", CLAIMS_SPEC["C4"].text, "supported", ID_SEQ_ACC]
    assert cells[4] == "+0.200 [+0.100, +0.300] p (Holm) 0.0120, min p 0.0312"
    assert cells[5:8] == ["±0.02", "6", "11 / 3"]
    assert '<a href="#C4">rule and numbers</a>' in str(table)
    evidence = str(templates().get_template("_claims.html.j2").module.claim_evidence([row]))
    assert "effect +0.200 [+0.100, +0.300]" in evidence and "p 0.0312 (Holm 0.0120;" in evidence
    assert "the smallest p 6 seeds allow: 0.0312" in evidence
    assert "11 of 14 runs kept" in evidence and "2 not competent" in evidence
    assert "per-form means shown" in evidence


def test_claims_csv_follows_the_claim_table_with_the_reason_of_each_inconclusive(study):
    csv = pd.read_csv(study["out"] / "tables" / "claims.csv", keep_default_na=False)
    assert list(csv.columns) == list(CLAIM_COLUMNS)
    assert csv["claim"].tolist() == CLAIMS
    for _, row in csv.iterrows():
        assert row["verdict"].split(" (n = ")[0] in VERDICTS
        assert (row["reason"] != "") == row["verdict"].startswith("inconclusive")
        assert f"{row['runs kept']} of " in row["exclusions"]


def test_half_finished_study_lists_missing_and_diverged_points(study):
    html = study["html"]
    assert "missing: <strong>2</strong>" in html
    for point in NEVER_RUN:
        assert f"<li><code>{grid_key(point)}</code></li>" in html
    assert grid_key(DIVERGED[0]) in html and "loss = nan" in html


def test_latest_finished_trial_stands_for_its_grid_point(study):
    data = load_study(STUDY, study["uri"])
    assert data.runs["grid_key"].is_unique
    assert len(data.runs) == len(DECODER) + len(RNN) + len(DIVERGED)
    killed = data.attempts[data.attempts["status"] == "killed"]
    assert killed["grid_key"].tolist() == [grid_key(DECODER[0])]
    assert not data.runs["run_id"].isin(killed["run_id"]).any()


def test_points_the_grid_dropped_are_left_out_of_the_report(tmp_path):
    # standard's recall block changed task under --allow-grid-change: the dropped points'
    # runs stay in MLflow, but the study now is its current grid (grid.json), not them
    kept, dropped = RNN
    uri = make_study(tmp_path, "regridded", [kept, dropped])
    parent = load_study("regridded", uri).parent["run_id"]
    MlflowClient(uri).log_dict(parent, [grid_key(kept)], GRID_ARTIFACT)
    data = load_study("regridded", uri)
    assert data.runs["grid_key"].tolist() == [grid_key(kept)]
    assert set(data.lengths["run_id"]) == set(data.runs["run_id"])


def test_a_store_that_never_logged_near_ood_reads_it_from_exact_match_by_length(study, tmp_path):
    """Trials logged before near_ood_seq_acc existed still fill the column the tables and
    figures read: the mean exact match over the lengths L < length ≤ 2L."""
    older = tmp_path / "mlflow.db"
    shutil.copy(study["uri"].removeprefix("sqlite:///"), older)
    with sqlite3.connect(older) as db:
        for table in ("metrics", "latest_metrics"):
            db.execute(f"DELETE FROM {table} WHERE key = 'near_ood_seq_acc'")
    logged = load_study(STUDY, study["uri"]).runs.set_index("run_id")[NEAR_OOD_SEQ_ACC]
    runs = load_study(STUDY, f"sqlite:///{older}").runs.set_index("run_id")
    ok = runs["status"] == "ok"
    assert runs.loc[ok, NEAR_OOD_SEQ_ACC].notna().all()
    assert runs.loc[ok, NEAR_OOD_SEQ_ACC].to_dict() == pytest.approx(logged[ok].to_dict())


def test_runs_carry_the_facts_their_trials_logged_and_older_stores_read_them_anew(study, tmp_path):
    """Each run's variant facts come from its tags; a store written before the facts were
    logged has none, and the analysis reads them from the registered classes instead."""
    runs = load_study(STUDY, study["uri"]).runs
    for _, run in runs.iterrows():
        declared = declared_facts(run["task"], run["arch"], run["position"], run["score"])
        assert {name: run[name] for name in VARIANT_FACTS} == declared
    older = tmp_path / "mlflow.db"
    shutil.copy(study["uri"].removeprefix("sqlite:///"), older)
    with sqlite3.connect(older) as db:
        db.executemany("DELETE FROM tags WHERE key = ?", [(f,) for f in VARIANT_FACTS])
    untagged = load_study(STUDY, f"sqlite:///{older}").runs
    assert untagged[list(VARIANT_FACTS)].isna().all().all()
    for name in VARIANT_FACTS:
        assert fact(untagged, name).tolist() == runs[name].tolist()


def test_tidy_frames_are_saved_beside_the_report(study):
    runs = pd.read_csv(study["out"] / "runs.csv")
    lengths = pd.read_csv(study["out"] / "lengths.csv")
    positions = pd.read_csv(study["out"] / "positions.csv")
    curves = pd.read_csv(study["out"] / "curves.csv")
    ok = runs[runs["status"] == "ok"]
    assert set(runs["status"]) == {"ok", "diverged"}
    assert len(lengths) == len(ok) * 8  # every length 1..eval_max_len
    assert set(positions["split"]) == {"id", "ood"}
    assert {TRAIN_LOSS, VAL_SEQ_ACC} <= set(curves["metric"])
    assert ok[PEAK_MEM_MB].gt(0).all()


def test_reports_are_logged_to_the_parent_run(study):
    names = {a.path for a in study["client"].list_artifacts(study["parent"])}
    assert {"report.html", "report.pdf"} <= names


def test_empty_or_unknown_study_is_one_clear_error(study, capsys):
    client = study["client"]
    experiment = client.create_experiment("empty-study")
    client.create_run(experiment, tags={ROLE: STUDY_ROLE})
    with pytest.raises(StudyError, match="'empty-study' has no trial runs"):
        load_study("empty-study", study["uri"])
    assert main(["report", "--study", "nope", "--tracking-uri", study["uri"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no study named 'nope'" in err and STUDY in err


def test_missing_store_is_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(StudyError, match="no MLflow store"):
        load_study("quick", uri)
    assert not (tmp_path / "absent.db").exists()


def test_every_claim_points_to_a_figure_the_report_can_draw():
    assert {spec.figure for spec in CLAIMS_SPEC.values()} <= {f.key for f in FIGURES}


def test_attention_maps_rank_variants_on_exact_match_up_to_2l(monkeypatch):
    """The best and worst variants whose attention the report draws are ranked on
    near_ood_seq_acc, the claims' primary, not on the mean over every longer length."""
    runs = pd.DataFrame(
        [
            BASE_RUN
            | {"run_id": p, "position": p, ATTN_SHARPNESS: 0.5}
            | {NEAR_OOD_SEQ_ACC: near, OOD_SEQ_ACC: 1 - near}
            for p, near in (("rope", 0.8), ("learned", 0.2))
        ]
    )
    data = Study("demo", "sqlite://", "1", {}, (), runs, *[pd.DataFrame()] * 4, None)
    recorded = "attnstudy.analysis.figures_catalog.load_attention"
    monkeypatch.setattr(recorded, lambda _, run_id: {"run": run_id})
    picked = {title.split(":")[0]: maps["run"] for title, maps in attention_examples(data).items()}
    assert picked == {"best": "rope", "worst": "learned"}


def test_report_writes_the_dated_record_beside_it(study):
    record = (study["out"] / f"{STUDY}.md").read_text()
    assert record.startswith(f"# Results of study `{STUDY}`")
    assert sum(line.startswith("| C") for line in record.splitlines()) == len(CLAIMS)


def test_modern_section_comes_after_the_claims_only_when_the_study_ran_one():
    assert numbered_sections(False) == SECTIONS
    sections = numbered_sections(True)
    keys = list(sections)
    assert keys[keys.index("claims") + 1] == "modern"
    assert sections["modern"][0] == "5." and sections["completeness"][0] == "6."
    assert sections["appendix-runs"] == SECTIONS["appendix-runs"]
    runs = modern_runs()
    html = (
        templates()
        .get_template("_modern.html.j2")
        .render(
            sections=sections,
            modern=modern_table(runs),
            modern_names=modern_names(runs),
            seed_ci="CI text.",
        )
    )
    text = visible_text(html)
    assert '<h2 id="modern">5. Length-aware variants' in html and 'id="table-modern"' in html
    assert "normalisers sigmoid, encodings fire, beside" in text


def test_without_weasyprint_the_html_is_written_and_one_line_says_what_to_install(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as without Pango
    html = tmp_path / "report.html"
    html.write_text("<p>report</p>", encoding="utf-8")
    assert write_pdf(html, tmp_path / "report.pdf") is False
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "report.pdf not written" in line and "Pango" in line and "report.html is written" in line
    assert not (tmp_path / "report.pdf").exists()


def test_the_methods_list_package_versions_in_name_order_whatever_the_frames_order():
    runs = pd.DataFrame(
        {"version.torch": ["2.13.0"], "seed": [0], "version.mlflow": ["3.1"], "git_commit": ["a"]}
    )
    for columns in (list(runs.columns), list(reversed(runs.columns))):
        methods = _methods(SimpleNamespace(runs=runs[columns]), fixed=None, varied=None)
        assert list(methods["versions"]) == ["mlflow", "torch"]


def test_the_methods_say_once_how_an_interval_is_drawn(study):
    text = visible_text(study["html"])
    start = text.index("Statistics.")
    statistics = text[start : text.index("Seeds.", start)]
    assert statistics.count("percentile") == 1 and "averaged over the settings not shown" in text

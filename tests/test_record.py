"""results/<study>.md: the dated record make report writes from the logged runs."""

from datetime import datetime, timezone

import pandas as pd
from claim_frames import NO_LENGTHS, NO_POSITIONS
from frames import BASE_RUN

from attnstudy.analysis.claims import CLAIMS, RULE_VERSION
from attnstudy.analysis.load import Study
from attnstudy.analysis.record import record_markdown, write_record
from attnstudy.analysis.verdicts import evaluate_claims
from attnstudy.schema import (
    CPU,
    GIT_COMMIT,
    GIT_DIRTY,
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    NEAR_OOD_SEQ_ACC,
    OOD_SEQ_ACC,
    OOD_TOKEN_ACC,
    THREADS,
)

SEEDS = (0, 1, 2)


def study_of(runs: pd.DataFrame) -> Study:
    empty = pd.DataFrame()
    tags = {GIT_COMMIT: "abc123", GIT_DIRTY: "false"}
    tags |= {CPU: "Test CPU", THREADS: "1"}
    frames = (runs, empty, empty, empty, empty)
    return Study("demo", "sqlite://", "1", {"tags": tags}, (), *frames, None)


def runs_frame() -> pd.DataFrame:
    """Four encodings x three seeds; the mean over every longer length ranks them the
    other way round from exact match up to 2L (near_ood_seq_acc)."""
    rows = [
        {**BASE_RUN, "run_id": f"{p}{s}", "position": p, "seed": s}
        | {NEAR_OOD_SEQ_ACC: acc + s / 100, OOD_SEQ_ACC: 0.6 - acc}
        for p, acc in (("t5", 0.6), ("alibi", 0.5), ("sinusoidal", 0.1), ("learned", 0.0))
        for s in SEEDS
    ]
    return pd.DataFrame(rows)


def test_record_carries_provenance_verdicts_and_per_encoding_accuracy():
    runs = runs_frame()
    verdicts = evaluate_claims(runs, NO_LENGTHS, NO_POSITIONS)
    when = datetime(2026, 12, 2, 3, 4, tzinfo=timezone.utc)
    text = record_markdown(study_of(runs), verdicts, when)
    assert "2026-12-02 03:04 UTC" in text and "`abc123`" in text and "Test CPU, 1 torch" in text
    assert "seeds 0, 1, 2" in text
    claim_lines = [line for line in text.splitlines() if line.startswith("| C")]
    assert [line.split(" | ")[0] for line in claim_lines] == [f"| {claim}" for claim in CLAIMS]
    c11 = next(line for line in claim_lines if line.startswith("| C11 "))
    assert "inconclusive (n = 3)" in c11 and "`near_ood_seq_acc`" in c11 and "| 0.25 |" in c11
    assert f"rule version {RULE_VERSION}" in text
    encodings = [line.split(" | ")[4] for line in text.splitlines() if line.startswith("| copy ")]
    assert encodings == ["t5", "alibi", "sinusoidal", "learned"]  # best OOD up to 2L first


def test_per_encoding_rows_keep_score_functions_apart_and_extrapolation_competent_only():
    runs = runs_frame()
    runs.loc[runs["run_id"] == "t50", [ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, NEAR_OOD_SEQ_ACC]] = [
        0.5,
        0.5,
        1.0,
    ]
    sigmoid = {**BASE_RUN, "run_id": "sig", "score": "sigmoid", "position": "t5"}
    runs = pd.concat([runs, pd.DataFrame([sigmoid | {NEAR_OOD_SEQ_ACC: 0.9}])])
    text = record_markdown(study_of(runs), [], datetime(2026, 12, 2, tzinfo=timezone.utc))
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| copy ")]
    t5 = next(r for r in rows if r[1:5] == ["decoder", "scaled_dot", "4", "t5"])
    assert t5[5:8] == ["3 (2)", "0.833", "0.615"]  # ID over 3 runs; OOD over the 2 competent
    assert ["sigmoid", "4", "t5"] in [r[2:5] for r in rows]
    assert "## Beside the published numbers" not in text  # no published setting matched


def test_per_encoding_rows_keep_head_counts_apart():
    """copy · decoder · rope run with 1, 2 and 4 heads: one row per head count, each with
    its own runs, never one row pooling them."""
    rows = [
        {**BASE_RUN, "run_id": f"h{h}s{s}", "heads": h, "seed": s, NEAR_OOD_SEQ_ACC: h / 10}
        for h in (1, 2, 4)
        for s in SEEDS
    ]
    text = record_markdown(study_of(pd.DataFrame(rows)), [], datetime(2026, 12, 2))
    table = [line.split(" | ") for line in text.splitlines() if line.startswith("| copy ")]
    assert [(r[3], r[4], r[5], r[7]) for r in table] == [
        ("4", "rope", "3 (3)", "0.400"),
        ("2", "rope", "3 (3)", "0.200"),
        ("1", "rope", "3 (3)", "0.100"),
    ]
    assert "| task | architecture | score | heads | encoding |" in text


def test_record_keeps_architectures_and_randomized_positions_apart_and_sets_papers_beside():
    # the replicate-deletang record had an empty table (it kept plain decoder runs only)
    # and no word of the Ruoss et al. comparison its study was run for
    rows = [
        {**BASE_RUN, "run_id": f"{r}{s}", "arch": "encoder", "task": "sort", "position": "rope"}
        | {"randomized": r, "seed": s, NEAR_OOD_SEQ_ACC: 0.1 + r / 2}
        | {OOD_SEQ_ACC: 0.1 + r / 2, OOD_TOKEN_ACC: 0.4 + r / 2}
        for r in (False, True)
        for s in SEEDS
    ]
    text = record_markdown(study_of(pd.DataFrame(rows)), [], datetime(2026, 12, 2))
    table = [line.split(" | ") for line in text.splitlines() if line.startswith("| sort | enc")]
    assert [r[4] for r in table] == ["rope (randomized)", "rope"]  # best OOD first
    assert "## Beside the published numbers" in text
    assert "### Randomized positions in a bidirectional encoder" in text
    gain = next(line for line in text.splitlines() if "randomized minus plain" in line)
    assert "50.0 [50.0, 50.0]" in gain and "+12.0" in gain


def test_write_record_names_the_file_after_the_study(tmp_path):
    runs = runs_frame()
    verdicts = evaluate_claims(runs, NO_LENGTHS, NO_POSITIONS)
    path = write_record(study_of(runs), verdicts, tmp_path)
    assert path == tmp_path / "demo.md" and path.read_text().startswith("# Results of study")


def test_record_names_every_commit_the_runs_were_trained_at():
    """A study resumed after a change holds runs of several commits; the record counts
    each (most runs first), not only the commit that last touched the study."""
    runs = runs_frame()
    runs["git_commit"] = ["a" * 40] * 4 + ["b" * 40] * 8
    text = record_markdown(study_of(runs), [], datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert "runs trained at `bbbbbbb` (8), `aaaaaaa` (4)" in text
    assert "last run of the study: `abc123` (local edits: false)" in text

"""results/<study>.md: the dated record make report writes from the logged runs."""

from datetime import datetime, timezone

import pandas as pd
from frames import BASE_RUN
from test_claims import NO_LENGTHS, NO_POSITIONS

from analysis.claims import evaluate_claims
from analysis.load import Study
from analysis.record import record_markdown, write_record

SEEDS = (0, 1, 2)


def study_of(runs: pd.DataFrame) -> Study:
    empty = pd.DataFrame()
    tags = {"attnstudy.git_commit": "abc123", "attnstudy.git_dirty": "false"}
    tags |= {"attnstudy.cpu": "Test CPU", "attnstudy.torch_threads": "1"}
    frames = (runs, empty, empty, empty, empty)
    return Study("demo", "sqlite://", "1", {"tags": tags}, (), *frames, None)


def runs_frame() -> pd.DataFrame:
    rows = [
        {**BASE_RUN, "run_id": f"{p}{s}", "position": p, "seed": s, "ood_seq_acc": acc + s / 100}
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
    assert [line.split(" | ")[0] for line in claim_lines] == [f"| C{i}" for i in range(1, 13)]
    c11 = next(line for line in claim_lines if line.startswith("| C11 "))
    assert "supported" in c11 and "`ood_seq_acc`" in c11
    encodings = [line.split(" | ")[2] for line in text.splitlines() if line.startswith("| copy ")]
    assert encodings == ["t5", "alibi", "sinusoidal", "learned"]  # best OOD first


def test_per_encoding_rows_keep_score_functions_apart_and_extrapolation_competent_only():
    runs = runs_frame()
    runs.loc[runs["run_id"] == "t50", ["id_seq_acc", "ood_seq_acc"]] = [0.5, 1.0]
    sigmoid = {**BASE_RUN, "run_id": "sig", "score": "sigmoid", "position": "t5"}
    runs = pd.concat([runs, pd.DataFrame([sigmoid | {"ood_seq_acc": 0.9}])])
    text = record_markdown(study_of(runs), [], datetime(2026, 12, 2, tzinfo=timezone.utc))
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| copy ")]
    t5 = next(r for r in rows if r[1:3] == ["scaled_dot", "t5"])
    assert t5[3:6] == ["3 (2)", "0.833", "0.615"]  # ID over 3 runs; OOD over the 2 competent
    assert ["sigmoid", "t5"] in [r[1:3] for r in rows]


def test_write_record_names_the_file_after_the_study(tmp_path):
    runs = runs_frame()
    verdicts = evaluate_claims(runs, NO_LENGTHS, NO_POSITIONS)
    path = write_record(study_of(runs), verdicts, tmp_path)
    assert path == tmp_path / "demo.md" and path.read_text().startswith("# Results of study")

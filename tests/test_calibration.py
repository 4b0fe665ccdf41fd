"""The calibration table counts competent runs per (task, arch, budget), only among cells
that can solve their task, and names the variants that fell short; a run rewrites the
sections of the studies it reads and keeps the others."""

import pandas as pd
from frames import BASE_RUN

from attnstudy.analysis.calibration import INTRO, budget_rows, document, main, section, sections_of
from attnstudy.schema import ID_SEQ_ACC_AT_MAX, STEPS_TO_95

BUDGET = {"steps": 1500, "batch_size": 64, "warmup_steps": 50}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {**BASE_RUN, **BUDGET, "solvable": True, "run_id": f"r{i}", **r}
            for i, r in enumerate(rows)
        ]
    )


def test_competence_counts_only_solvable_finished_runs_and_names_the_short_variants():
    runs = frame(
        [
            {"position": "rope", "seed": 0, STEPS_TO_95: 300.0},
            {"position": "rope", "seed": 1, STEPS_TO_95: 500.0},
            {"position": "none", "seed": 0, ID_SEQ_ACC_AT_MAX: 0.70, STEPS_TO_95: float("nan")},
            {"position": "none", "seed": 1, STEPS_TO_95: 900.0},
            {
                "position": "none",
                "seed": 2,
                "status": "diverged",
                ID_SEQ_ACC_AT_MAX: float("nan"),
            },
            {"arch": "encoder", "position": "none", "solvable": False, ID_SEQ_ACC_AT_MAX: 0.1},
        ]
    )
    (row,) = budget_rows(runs)
    assert (row["runs"], row["competent"]) == (4, 3)
    assert row["median_steps_to_95"] == 500.0 and row["max_steps_to_95"] == 900.0
    assert row["short"] == "none 1/2"


def test_one_row_per_task_arch_and_budget_and_every_row_in_the_markdown():
    runs = frame(
        [
            {"task": "copy"},
            {"task": "reverse", "steps": 4000, ID_SEQ_ACC_AT_MAX: 0.5},
            {"task": "reverse", "steps": 4000, "seed": 1},
        ]
    )
    rows = budget_rows(runs)
    assert [(r["task"], r["steps"], r["competent"], r["runs"]) for r in rows] == [
        ("copy", 1500, 1, 1),
        ("reverse", 4000, 1, 2),
    ]
    assert rows[1]["short"] == "all 1/2"
    lines = section("s", runs).splitlines()
    table = [line for line in lines if line.startswith(("| copy |", "| reverse |"))]
    assert len(table) == 2 and "1/2 (50%)" in table[1] and "| 4000 |" in table[1]


def test_the_header_names_each_commit_a_study_s_runs_were_trained_at():
    runs = frame([{"git_commit": "a" * 40}, {"git_commit": "b" * 40}, {"git_commit": "b" * 40}])
    text = section("s", runs)
    assert text.startswith("## s\n")
    assert "Runs logged in MLflow: trained at `bbbbbbb` (2), `aaaaaaa` (1);" in text


def test_a_run_rewrites_the_sections_of_its_studies_and_keeps_the_others():
    old = document("", {"a": "## a\n\nold a rows\n", "b": "## b\n\nold b rows\n"})
    new = document(old, {"b": section("b", frame([{}])), "c": section("c", frame([{}]))})
    assert new.startswith(INTRO)
    assert [line for line in new.splitlines() if line.startswith("## ")] == [
        "## a",
        "## b",
        "## c",
    ]
    assert "old a rows" in new and "old b rows" not in new
    assert document(new, {}) == new  # reading nothing changes nothing


def test_a_study_that_cannot_be_read_stops_before_the_file_is_touched(tmp_path, capsys):
    out = tmp_path / "calibration.md"
    out.write_text("kept\n")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["nosuch", "--tracking-uri", store, "--out", str(out)]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert out.read_text() == "kept\n"


def test_an_estimate_sample_gets_a_section_of_its_own(tmp_path):
    """`study estimate --csv` writes what `NAME@CSV` reads: no MLflow store is needed."""
    sample = frame(
        [
            {"seed": 0, STEPS_TO_95: 400.0},
            {"seed": 1, ID_SEQ_ACC_AT_MAX: 0.5, "git_commit": "c" * 40},
        ]
    )
    path = tmp_path / "estimate-full.csv"
    sample.to_csv(path, index=False)
    out = tmp_path / "calibration.md"
    assert main([f"full@{path}", "--out", str(out)]) == 0
    (text,) = sections_of(out.read_text()).values()
    assert text.startswith(f"## full\n\nA sample timed by `attnstudy study estimate` ({path}):")
    assert "| copy | decoder |" in text and "| 1/2 (50%) | 400 (400) | all 1/2 |" in text


def test_a_missing_estimate_sample_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "calibration.md"
    assert main([f"full@{tmp_path / 'none.csv'}", "--out", str(out)]) == 2
    assert "no estimate sample at" in capsys.readouterr().err
    assert not out.exists()

"""`attnstudy study estimate`: a seeded sample of grid points, timed, projected to the grid."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace

import pytest
from builders import BLOCKS, TINY_STUDY, study_file

from attnstudy.cli import main
from attnstudy.estimate import (
    Timed,
    estimate_study,
    project,
    sample_points,
    summary_lines,
    time_points,
)
from attnstudy.schema import ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, STEPS_TRAINED


def test_the_sample_is_seeded_distinct_and_at_most_the_grid(tmp_path):
    spec = study_file(tmp_path, TINY_STUDY)  # four points
    points = spec.points()
    keys = [p.key for p in sample_points(points, 3, seed=1)]
    assert keys == [p.key for p in sample_points(points, 3, seed=1)]
    assert len(set(keys)) == 3
    assert sorted(p.key for p in sample_points(points, 10, seed=1)) == sorted(p.key for p in points)


@pytest.mark.parametrize("seconds", [[10.0, 10.0, 10.0], [4.0, 16.0]])
def test_projection_is_mean_trial_time_times_points_within_its_interval(seconds):
    sample = [Timed(None, s, 100, 1.0, 0) for s in seconds]
    found = project(360, sample, seed=0)  # 360 points of the mean time, in hours
    assert found.hours == pytest.approx(sum(seconds) / len(seconds) / 10)
    low, high = found.hours_ci
    assert min(seconds) / 10 <= low <= found.hours <= high <= max(seconds) / 10
    assert (low == high) == (len(set(seconds)) == 1)


def test_estimate_trains_the_sample_and_writes_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = study_file(tmp_path, TINY_STUDY)
    out = io.StringIO()
    found = estimate_study(spec, 2, seed=0, workers=2, out=out, threads=1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "study tiny: timing 2 of 4 grid points"
    assert sorted(line.split()[-1] for line in lines[1:3]) == sorted(
        t.point.key for t in found.sample
    )
    assert all(t.seconds > 0 and t.steps == TINY_STUDY["fixed"]["steps"] for t in found.sample)
    assert f"{found.hours / 2:.1f} h with 2 workers" in out.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_estimate_writes_its_sample_to_csv_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = study_file(tmp_path, TINY_STUDY)
    path = tmp_path / "sample.csv"
    found = estimate_study(spec, 2, seed=0, workers=1, out=io.StringIO(), threads=1, csv_path=path)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["grid_key"] for r in rows] == [t.point.key for t in found.sample]
    for row, timed in zip(rows, found.sample, strict=True):
        assert row["position"] == timed.point.config.position
        assert int(row["steps"]) == TINY_STUDY["fixed"]["steps"] == int(row[STEPS_TRAINED])
        assert float(row[ID_SEQ_ACC]) == pytest.approx(timed.id_seq_acc)
        assert float(row[ID_SEQ_ACC_AT_MAX]) == pytest.approx(timed.id_seq_acc_at_max)
        assert (row["solvable"], row["status"], len(row["git_commit"])) == ("True", "ok", 40)


def test_estimate_refuses_a_csv_path_it_could_not_write_before_training(tmp_path, capsys):
    spec = study_file(tmp_path, TINY_STUDY)
    csv_path = tmp_path / "missing" / "sample.csv"
    assert main(["study", "estimate", spec.path, "--csv", str(csv_path)]) == 2
    assert f"--csv: no directory {csv_path.parent}" in capsys.readouterr().err
    assert not csv_path.parent.exists()


def test_estimate_trains_as_many_trials_at_once_as_the_study_has_workers(tmp_path, monkeypatch):
    # The study times trials beside each other on the cores they share; an estimate that
    # trained one trial at a time, alone, would time them faster than any worker runs them.
    monkeypatch.chdir(tmp_path)
    spec = study_file(tmp_path, TINY_STUDY)
    found = estimate_study(spec, 4, seed=3, workers=2, out=io.StringIO(), threads=1)
    assert [t.point.key for t in found.sample] == [
        p.key for p in sample_points(spec.points(), 4, 3)
    ]
    assert len({t.pid for t in found.sample}) == 2
    assert os.getpid() not in {t.pid for t in found.sample}


def test_estimate_stops_with_an_error_when_a_trial_process_dies(tmp_path):
    # A config past the edge's validation (an unknown task) makes the process's trial raise.
    point = study_file(tmp_path, TINY_STUDY).points()[0]
    broken = replace(point, config=replace(point.config, task="no_such_task"))
    timed = []
    with pytest.raises(RuntimeError, match=r"^an estimate process died \(exit code 1\)$"):
        time_points([broken], workers=1, threads=1, on_timed=timed.append)
    assert timed == []


def test_estimate_rejects_an_empty_sample(tmp_path, capsys):
    spec = study_file(tmp_path, TINY_STUDY)
    assert main(["study", "estimate", spec.path, "--sample", "0"]) == 2
    assert capsys.readouterr().err.strip() == "attnstudy: error: --sample: must be >= 1, got 0"


def test_estimate_samples_across_blocks_and_counts_only_solvable_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = study_file(tmp_path, BLOCKS)  # four points in three blocks, one unsolvable
    out = io.StringIO()
    found = estimate_study(spec, 4, seed=0, workers=1, out=out, threads=1)
    assert out.getvalue().splitlines()[0] == "study blocks: timing 4 of 4 grid points"
    assert sorted(t.point.key for t in found.sample) == sorted(p.key for p in spec.points())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.yaml"]
    solvable = [t for t in found.sample if t.point.solvable]
    reached = sum(t.id_seq_acc_at_max >= 0.95 for t in solvable)
    assert (
        out.getvalue()
        .rstrip()
        .endswith(
            f"{reached} of 3 sampled trials reach >= 95% exact match at the longest training "
            "length (1 sampled unsolvable by construction left out)"
        )
    )


def test_unsolvable_trials_do_not_count_towards_competence(tmp_path):
    points = {p.solvable: p for p in study_file(tmp_path, BLOCKS).points()}
    sample = [
        Timed(points[True], 1.0, 10, 1.0, 0, id_seq_acc_at_max=1.0),
        Timed(points[False], 1.0, 10, 1.0, 0, id_seq_acc_at_max=1.0),
    ]
    lines = summary_lines(project(4, sample, seed=0), 1, 1).splitlines()
    assert lines[-1] == (
        "1 of 1 sampled trials reach >= 95% exact match at the longest training length "
        "(1 sampled unsolvable by construction left out)"
    )


def test_competence_is_exact_match_at_the_longest_training_length_not_the_mean(tmp_path):
    """The analysis's gate: a run at 0.97 mean over 1..L but 0.80 at L is not competent."""
    point = study_file(tmp_path, TINY_STUDY).points()[0]
    sample = [
        Timed(point, 1.0, 10, 0.97, 0, id_seq_acc_at_max=0.80),
        Timed(point, 1.0, 10, 0.90, 0, id_seq_acc_at_max=0.95),
    ]
    assert [t.competent for t in sample] == [False, True]
    assert summary_lines(project(4, sample, seed=0), 1, 1).splitlines()[-1].startswith("1 of 2")

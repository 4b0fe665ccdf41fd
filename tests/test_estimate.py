"""`attnstudy study estimate`: a seeded sample of grid points, timed, projected to the grid."""

from __future__ import annotations

import io

import pytest
from test_study import TINY, study_file

from attnstudy.cli import main
from attnstudy.estimate import Timed, estimate_study, project, sample_points


def test_the_sample_is_seeded_distinct_and_at_most_the_grid(tmp_path):
    spec = study_file(tmp_path, TINY)  # four points
    points = spec.points()
    keys = [p.key for p in sample_points(points, 3, seed=1)]
    assert keys == [p.key for p in sample_points(points, 3, seed=1)]
    assert len(set(keys)) == 3
    assert sorted(p.key for p in sample_points(points, 10, seed=1)) == sorted(p.key for p in points)


@pytest.mark.parametrize("seconds", [[10.0, 10.0, 10.0], [4.0, 16.0]])
def test_projection_is_mean_trial_time_times_points_within_its_interval(seconds):
    sample = [Timed(None, s, 100, 1.0) for s in seconds]
    found = project(360, sample, seed=0)  # 360 points of the mean time, in hours
    assert found.hours == pytest.approx(sum(seconds) / len(seconds) / 10)
    low, high = found.hours_ci
    assert min(seconds) / 10 <= low <= found.hours <= high <= max(seconds) / 10
    assert (low == high) == (len(set(seconds)) == 1)


def test_estimate_trains_the_sample_and_writes_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = study_file(tmp_path, TINY)
    out = io.StringIO()
    found = estimate_study(spec, 2, seed=0, workers=2, out=out, threads=1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "study tiny: timing 2 of 4 grid points"
    assert [line.split()[-1] for line in lines[1:3]] == [t.point.key for t in found.sample]
    assert all(t.seconds > 0 and t.steps == TINY["fixed"]["steps"] for t in found.sample)
    assert f"{found.hours / 2:.1f} h with 2 workers" in out.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_estimate_rejects_an_empty_sample(tmp_path, capsys):
    spec = study_file(tmp_path, TINY)
    assert main(["study", "estimate", spec.path, "--sample", "0"]) == 2
    assert capsys.readouterr().err.strip() == "attnstudy: error: --sample: must be >= 1, got 0"

"""Scale-out on real engines: two `attnstudy study run` processes share one study through
PostgreSQL (Optuna's storage) and an `mlflow server` on PostgreSQL that serves artifacts."""

import os
import socket

import pytest
from servers import free_port, listens, mlflow_server, postgres
from test_reliability import check_one_result_per_point, launch, log_of
from test_study import ARTIFACTS, TINY, mlflow_runs, study_file

from attnstudy.work_queue import make_stores


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("servers") / "artifacts"
    with postgres() as database, mlflow_server(f"{database}/mlflow", artifacts) as tracking:
        yield database, tracking


def test_two_worker_processes_share_a_study_through_postgresql_and_mlflow_server(servers, tmp_path):
    database, tracking = servers
    spec = study_file(tmp_path, TINY | {"name": "scaleout"})
    stores = make_stores(tmp_path / "runs", f"{database}/optuna", tracking)
    # nothing is killed here: a grace no load reaches, so no live worker is taken for dead
    workers = [launch(spec, stores, "--workers", "1", "--grace", "120") for _ in range(2)]
    # the timeout only bounds a hang: 31 s measured with both cores busy
    assert [w.wait(timeout=900) for w in workers] == [0, 0], log_of(stores)
    assert "View run" not in log_of(stores)  # MLflow prints no URL per run

    results, runs = check_one_result_per_point(spec, stores)
    assert len(results) == len(runs) == 4
    client, _ = mlflow_runs(spec, stores, "trial")
    for run in runs:
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == ARTIFACTS
        history = client.get_metric_history(run.info.run_id, "eval_seq_acc")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    assert not stores.runs_dir.exists()  # a worker keeps nothing on its own disk


def test_a_server_that_loses_its_free_port_starts_on_another(monkeypatch):
    """Another program may bind the free port before the server does; the server exits
    saying so, and starts again on a fresh port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr("servers.free_port", lambda: next(ports, None) or free_port())
        with postgres() as url:
            port = int(url.rsplit(":", 1)[1])
            assert port != taken.getsockname()[1]
            assert listens(os.getpgid(0), taken.getsockname()[1])
            assert not listens(os.getpgid(0), port)  # the server's, not ours

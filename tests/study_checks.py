"""What the stores of a study run hold, read the way the tests check them: its MLflow runs by
role, its Optuna trials, and the check that every grid point has exactly one result.
Functions and constants only: importing this module starts and reads nothing."""

from collections import Counter

import optuna
from mlflow import MlflowClient

from attnstudy.schema import GRID_KEY, MODEL_ARTIFACT, POSITION_TABLE, ROLE, STUDY_ROLE, TRIAL_ROLE
from attnstudy.work_queue import RUN_ID_ATTR

# What every trained trial's MLflow run stores as artifacts.
ARTIFACTS = {
    "per_length.csv",
    POSITION_TABLE,
    "accuracy_vs_length.png",
    "attention.png",
    "attention.npz",
    "config.json",
    MODEL_ARTIFACT,
}


def mlflow_runs(spec, stores, role):
    client = MlflowClient(stores.tracking_uri)
    experiment = client.get_experiment_by_name(spec.name)
    where = f"tags.`{ROLE}` = '{role}'"
    return client, client.search_runs([experiment.experiment_id], where)


def stored_trials(spec, stores) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=spec.name, storage=stores.storage_url)
    return study.get_trials(deepcopy=False)


def check_one_result_per_point(spec, stores) -> tuple[list, list]:
    """Every grid point has exactly one result trial and one FINISHED MLflow run, and they
    point to each other; no trial is left queued or running and no run RUNNING. Returns
    (result trials, all trial runs)."""
    found = stored_trials(spec, stores)
    results = [t for t in found if t.state.name == "COMPLETE"]
    keys = {p.key: 1 for p in spec.points()}
    assert Counter(t.user_attrs["grid_key"] for t in results) == keys
    assert all(t.state.is_finished() for t in found)
    client, runs = mlflow_runs(spec, stores, TRIAL_ROLE)
    assert "RUNNING" not in {r.info.status for r in runs}
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert Counter(r.data.tags[GRID_KEY] for r in finished) == keys
    assert {t.user_attrs[RUN_ID_ATTR] for t in results} == {r.info.run_id for r in finished}
    _, parents = mlflow_runs(spec, stores, STUDY_ROLE)
    assert [p.info.status for p in parents] == ["FINISHED"]
    return results, runs

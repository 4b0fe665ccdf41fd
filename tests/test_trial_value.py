"""Optuna's trial value is the in-distribution validation exact match that selected the
checkpoint, never a test-length number: a dashboard's "best trial" must not be chosen on
the lengths the study tests extrapolation on."""

import io

from builders import ONE_POINT_AXES, TINY_STUDY, stores_in, study_file
from mlflow import MlflowClient

from attnstudy.schema import BEST_VAL_SEQ_ACC, ID_SEQ_ACC, OOD_SEQ_ACC, VAL_SEQ_ACC
from attnstudy.study import run_study
from attnstudy.work_queue import RUN_ID_ATTR, Queue

ONE_POINT = TINY_STUDY | {"name": "value", "axes": ONE_POINT_AXES}


def test_finish_stores_the_validation_exact_match_as_the_trial_value(tmp_path):
    spec, stores = study_file(tmp_path, ONE_POINT), stores_in(tmp_path)
    stores.runs_dir.mkdir()
    queue = Queue(spec, stores)
    queue.check_grid(allow_change=False)
    queue.fill()
    trial, _ = queue.claim()
    summary = {BEST_VAL_SEQ_ACC: 0.75, ID_SEQ_ACC: 0.5, OOD_SEQ_ACC: 0.25}
    queue.finish(queue.trial_id(trial.number), "ok", None, summary)
    (done,) = queue.trials()
    assert done.value == 0.75


def test_a_trained_trial_s_value_is_its_selected_validation_exact_match(tmp_path):
    """End to end: the value is the validation exact match train.run selected on, as MLflow
    logged it for the trial's run."""
    spec, stores = study_file(tmp_path, ONE_POINT), stores_in(tmp_path)
    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    (trial,) = Queue(spec, stores).trials()
    run = MlflowClient(stores.tracking_uri).get_run(trial.user_attrs[RUN_ID_ATTR])
    history = MlflowClient(stores.tracking_uri).get_metric_history(run.info.run_id, VAL_SEQ_ACC)
    assert trial.value == run.data.metrics[BEST_VAL_SEQ_ACC] == max(m.value for m in history)

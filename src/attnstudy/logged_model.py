"""The study's models as MLflow users load them: for each encoding, the weights its best
variant's selected trial kept (`model.pt`), rebuilt from the trial's config and logged on
the study's parent run with `mlflow.pytorch.log_model` as `model-<encoding>`, with a
signature and an input example. `mlflow.pytorch.load_model` gives back a `GreedyAnswer`:
input token ids in, the model's greedy answer out.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from attnstudy.archs import Arch, build_model
from attnstudy.config import Config
from attnstudy.evaluate import POSITION_SEED, TEST_SEED
from attnstudy.schema import MODEL_ARTIFACT, TRIAL_RUN, model_source
from attnstudy.tasks import PAD, Batch, Task, build_task
from attnstudy.tracking import Tracker

EXAMPLES = 4  # examples of the longest training length in a logged model's input example


def signature():
    """Token ids (int64) in, token ids out, for any batch size and length (the examples of
    one call share a length)."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    ids = Schema([TensorSpec(np.dtype(np.int64), (-1, -1))])
    return ModelSignature(inputs=ids, outputs=ids)


class GreedyAnswer(nn.Module):
    """A trained model as MLflow serves it: the input token ids (B, Tin) int64 of examples
    of one length in, its greedy answer (B, Tout + 1) out: the target's token ids, then the
    end token (Tout for an architecture that does not emit one, `Arch.emits_eos`)."""

    def __init__(self, model: Arch, task: Task):
        super().__init__()
        self.model, self.task = model.eval(), task

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> Tensor:
        B, width = inputs.shape
        n = example_length(self.task, width)
        out = self.task.target_len(n)
        lens = torch.full((B,), width, device=inputs.device)
        targets = torch.full((B, out), PAD, device=inputs.device)
        batch = Batch(inputs, lens, targets, torch.full((B,), out, device=inputs.device))
        return self.model.predict(batch, torch.Generator().manual_seed(POSITION_SEED))


def example_length(task: Task, width: int) -> int:
    """The example length n whose input is `width` tokens (`Task.input_len`)."""
    for n in range(1, width + 1):
        if task.input_len(n) == width:
            return n
    raise ValueError(f"no {task.name} example has an input of {width} tokens")


def trained_model(client, run_id: str, cfg: Config) -> GreedyAnswer:
    """cfg's model with the weights trial run `run_id` kept (its `model.pt`), on the CPU."""
    task = build_task(cfg.task, cfg.eval_max_len)
    model = build_model(cfg, task)
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, MODEL_ARTIFACT, tmp)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return GreedyAnswer(model, task)


def input_example(model: GreedyAnswer, cfg: Config) -> np.ndarray:
    """The input token ids of EXAMPLES test examples of the longest training length."""
    gen = torch.Generator().manual_seed(TEST_SEED)
    return model.task.sample(torch.full((EXAMPLES,), cfg.train_max_len), gen).inputs.numpy()


@contextmanager
def fluent_api_on(uri: str) -> Iterator[None]:
    """MLflow's fluent API, which `log_model` writes through, on `uri` for the block, without
    the warning that a pickled model must be trusted (pt2 cannot export greedy decoding:
    its shapes depend on the input)."""
    import mlflow

    previous, pytorch_log = mlflow.get_tracking_uri(), logging.getLogger("mlflow.pytorch")
    level = pytorch_log.level
    mlflow.set_tracking_uri(uri)
    pytorch_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        pytorch_log.setLevel(level)


def log_model(tracker: Tracker, parent_id: str, encoding: str, cfg: Config, run_id: str) -> None:
    """Trial run `run_id`'s model (config cfg, its params) as `model-<encoding>` of the
    study's experiment, an output of the parent run. The logged model is created first, so
    that it belongs to the study's experiment (log_model alone files it under the active
    experiment, whatever run it names)."""
    import mlflow.pytorch

    model = trained_model(tracker.client, run_id, cfg)
    example = input_example(model, cfg)
    entry = tracker.client.create_logged_model(
        tracker.experiment_id,
        name=f"model-{encoding}",
        source_run_id=parent_id,
        params={k: str(v) for k, v in cfg.to_dict().items()},
        tags={TRIAL_RUN: run_id},
    )
    with fluent_api_on(tracker.uri):
        mlflow.pytorch.log_model(
            model,
            model_id=entry.model_id,
            run_id=parent_id,
            signature=signature(),
            input_example=example,
            serialization_format="pickle",
            # given, not inferred (which loads the model in a subprocess: seconds per model)
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
    tracker.client.set_tag(parent_id, model_source(encoding), run_id)


def log_best_models(
    tracker: Tracker, parent_id: str, selected: dict[str, tuple[Config, str]]
) -> None:
    """For each encoding, its selected trial's model (config, trial run id) on the parent
    run, unless the parent already holds that trial's model (a study run again)."""
    logged = tracker.client.get_run(parent_id).data.tags
    for encoding, (cfg, run_id) in sorted(selected.items()):
        if logged.get(model_source(encoding)) != run_id:
            log_model(tracker, parent_id, encoding, cfg, run_id)

"""The model a study logs for MLflow users (attnstudy.logged_model), on hand-built inputs
(the tiny study in test_ui checks the logged runs): it answers as the trained model
predicts."""

import pytest
import torch
from builders import TINY_MODEL

from attnstudy.archs import build_model
from attnstudy.evaluate import POSITION_SEED
from attnstudy.logged_model import GreedyAnswer, example_length
from attnstudy.registries import make_config
from attnstudy.tasks import build_task


@pytest.mark.parametrize(
    "task, arch, position",
    [
        ("copy", "decoder", "rope"),
        ("addition", "encoder-decoder", "learned"),  # input 2n + 1 tokens, target n + 1
        ("duplicate", "encoder", "learned"),  # target 2n tokens, no end token
        ("reverse", "rnn", "none"),
    ],
)
def test_the_logged_model_answers_every_length_as_the_model_predicts(task, arch, position):
    # one layer; trained on lengths 1 to 4 and evaluated up to 8, so that the lengths 1, 4
    # and 7 answered below lie inside, at the end of and past the trained ones
    size = TINY_MODEL | dict(n_layers=1, train_max_len=4, eval_max_len=8)
    cfg = make_config(task=task, arch=arch, position=position, **size)
    built = build_task(task, cfg.eval_max_len)
    model = build_model(cfg, built).eval()
    answer = GreedyAnswer(model, built)
    for n in (1, 4, 7):
        batch = built.sample(torch.full((3,), n), torch.Generator().manual_seed(n))
        expected = model.predict(batch, torch.Generator().manual_seed(POSITION_SEED))
        width = built.target_len(n) + model.emits_eos
        assert expected.shape == (3, width)
        assert torch.equal(answer(batch.inputs), expected)


def test_an_input_no_example_has_is_refused():
    addition = build_task("addition", 8)  # inputs of 2n + 1 tokens
    assert example_length(addition, 9) == 4
    with pytest.raises(ValueError, match="no addition example has an input of 8 tokens"):
        example_length(addition, 8)

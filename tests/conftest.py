import pytest
import torch
from hypothesis import settings

# The shared checks moved out of the test modules keep pytest's detailed assertion messages.
pytest.register_assert_rewrite("commands", "study_checks")

# Hypothesis fails an example slower than 200 ms by default: on a loaded machine that is
# the scheduler, not the property under test. The tests check properties, never speed.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


MODULE_MARKS = {  # what each module's tests need; `make test-fast` runs none of these
    "test_scaleout": ("postgres", "processes", "slow"),
    "test_reliability": ("processes", "slow"),
    "test_report": ("browser", "slow"),
    "test_ui": ("browser", "processes"),
    "test_redaction": ("processes",),
    "test_study": ("processes",),
    "test_bad_input": ("processes",),
    "test_estimate": ("processes",),
    "test_trial_value": ("processes",),
    "test_bench": ("slow",),
}


def pytest_collection_modifyitems(items):
    for item in items:
        for mark in MODULE_MARKS.get(item.module.__name__.rsplit(".", 1)[-1], ()):
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    """Tests run single-threaded (the machine is shared) and from a fixed seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)

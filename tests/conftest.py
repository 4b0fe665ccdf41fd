import pytest
import torch
from hypothesis import settings

# Hypothesis fails an example slower than 200 ms by default: on a loaded machine that is
# the scheduler, not the property under test. The tests check properties, never speed.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    """Tests run single-threaded (the machine is shared) and from a fixed seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)

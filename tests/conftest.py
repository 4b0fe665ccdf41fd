import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    """Tests run single-threaded (the machine is shared) and from a fixed seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)

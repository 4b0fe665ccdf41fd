import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.tasks import (
    BLANK,
    BOS,
    EOS,
    NUM_SPECIAL,
    PAD,
    SEP,
    TASKS,
    build_task,
    one_length,
    sample_lengths,
)


def sample(name, lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return build_task(name, 64).sample(torch.tensor(lengths), gen)


def digits(row):
    """Little-endian digit tokens → integer."""
    return sum((int(t) - NUM_SPECIAL) * 10**i for i, t in enumerate(row))


lengths_st = st.lists(st.integers(1, 20), min_size=1, max_size=8)


@pytest.mark.parametrize("name", TASKS)
@given(lengths=lengths_st)
@settings(max_examples=20, deadline=None)
def test_shapes_lengths_and_padding(name, lengths):
    task = build_task(name, 64)
    b = sample(name, lengths)
    for i, n in enumerate(lengths):
        assert b.input_lens[i] == task.input_len(n) and b.target_lens[i] == task.target_len(n)
        assert (b.inputs[i, : b.input_lens[i]] >= NUM_SPECIAL).all()
        assert (b.inputs[i, b.input_lens[i] :] == PAD).all()
        assert (b.targets[i, : b.target_lens[i]] >= NUM_SPECIAL).all()
        assert (b.targets[i, b.target_lens[i] :] == PAD).all()
        assert (b.inputs[i] < task.vocab_size).all() and (b.targets[i] < task.vocab_size).all()


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_examples(name):
    a, b = sample(name, [3, 5, 7], seed=1), sample(name, [3, 5, 7], seed=1)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


@given(lengths=lengths_st)
@settings(max_examples=30, deadline=None)
def test_copy_reverse_duplicate_sort_targets(lengths):
    for name in ("copy", "reverse", "duplicate", "sort"):
        b = sample(name, lengths)
        for i, n in enumerate(lengths):
            x, y = b.inputs[i, :n], b.targets[i, : b.target_lens[i]]
            expected = {
                "copy": x,
                "reverse": x.flip(0),
                "duplicate": torch.cat([x, x]),
                "sort": x.sort().values,
            }[name]
            assert torch.equal(y, expected), name


@given(lengths=lengths_st)
@settings(max_examples=30, deadline=None)
def test_reverse_of_reverse_is_identity(lengths):
    b = sample("reverse", lengths)
    for i, n in enumerate(lengths):
        assert torch.equal(b.targets[i, :n].flip(0), b.inputs[i, :n])


@given(lengths=lengths_st)
@settings(max_examples=30, deadline=None)
def test_addition_adds(lengths):
    task = build_task("addition", 64)
    b = sample("addition", lengths)
    for i, n in enumerate(lengths):
        x = b.inputs[i]
        assert x[n] == task.PLUS
        a, c = digits(x[:n]), digits(x[n + 1 : 2 * n + 1])
        assert digits(b.targets[i, : n + 1]) == a + c


@given(lengths=lengths_st)
@settings(max_examples=30, deadline=None)
def test_associative_recall_answers_the_queried_key(lengths):
    b = sample("associative_recall", lengths)
    for i, n in enumerate(lengths):
        pairs = b.inputs[i, : 2 * n].view(n, 2)
        query = b.inputs[i, 2 * n]
        assert len(set(pairs[:, 0].tolist())) == n  # keys are distinct
        assert b.targets[i, 0] == pairs[pairs[:, 0] == query, 1].item()


@given(lengths=lengths_st)
@settings(max_examples=30, deadline=None)
def test_sorted_recall_lists_every_pair_in_ascending_key_order(lengths):
    b = sample("sorted_recall", lengths)
    for i, n in enumerate(lengths):
        pairs = b.inputs[i, : 2 * n].view(n, 2).tolist()
        assert len({k for k, _ in pairs}) == n  # keys are distinct
        assert b.targets[i, : 2 * n].view(n, 2).tolist() == sorted(pairs)


def test_sorted_recall_values_sit_at_no_fixed_offset():
    # the value after target key j must be found by content: where key j stood in the
    # input varies from example to example
    b = sample("sorted_recall", [8] * 200)
    first_key = b.targets[:, 0]
    where = (b.inputs[:, 0::2] == first_key[:, None]).float().argmax(dim=1)
    assert len(set(where.tolist())) == 8


def test_long_range_tasks_are_declared_on_their_class():
    assert {name for name, cls in TASKS.items() if cls.long_range} == {
        "associative_recall",
        "sorted_recall",
    }


def test_training_lengths_cover_the_range():
    gen = torch.Generator().manual_seed(0)
    n = sample_lengths(3, 7, 2000, gen)
    assert set(n.tolist()) == {3, 4, 5, 6, 7}


def test_a_by_length_batch_has_one_length_drawn_as_a_padded_example_would_be():
    gen = torch.Generator().manual_seed(0)
    draws = [one_length(3, 7, 16, gen) for _ in range(2000)]
    assert all(len(n) == 16 and (n == n[0]).all() for n in draws)
    counts = torch.bincount(torch.stack([n[0] for n in draws]), minlength=8)[3:]
    assert counts.min() > 2000 / 5 * 0.8  # uniform over 3..7 like sample_lengths


def test_one_length_batches_have_no_padding():
    gen = torch.Generator().manual_seed(0)
    for name in TASKS:
        batch = build_task(name, 16).sample(one_length(1, 9, 8, gen), gen)
        assert (batch.inputs != PAD).all() and (batch.targets != PAD).all(), name


def test_specials_are_distinct_and_below_every_symbol():
    assert sorted({PAD, SEP, EOS, BLANK, BOS}) == list(range(NUM_SPECIAL))


@given(lengths=lengths_st)
@settings(max_examples=20, deadline=None)
def test_aligned_source_is_the_input_token_each_target_copies(lengths):
    declared = set()
    for name in TASKS:
        task, b = build_task(name, 64), sample(name, lengths)
        for i, n in enumerate(lengths):
            source = task.aligned_source(n)
            if source is not None:
                declared.add(name)
                assert len(source) == task.target_len(n)
                assert torch.equal(b.targets[i, : len(source)], b.inputs[i, source])
    assert declared == {"copy", "reverse"}

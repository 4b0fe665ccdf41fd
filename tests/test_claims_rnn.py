"""Tests of the rules of the RNN claims C1 (the context-vector bottleneck) and C2 (attention
removes it): what each reads and leaves out."""

from claim_frames import BUILDERS, ENOUGH, NO_POSITIONS, check, effects, verdict

from attnstudy.analysis.rules import Frames
from attnstudy.schema import ID_SEQ_ACC_AT_MAX


def test_c1_reads_only_configurations_where_the_plain_rnn_misses_its_longest_length():
    runs, lengths, positions = BUILDERS["C1"](effects(-0.3, ENOUGH))
    assert check("C1", runs, lengths, positions)[0] == "supported"
    v = verdict("C1", runs.assign(id_seq_acc_at_max=0.95), lengths, positions)
    assert v.verdict == "inconclusive" and "no runs" in v.reason


def test_competence_is_read_from_the_longest_training_length_where_it_was_not_logged():
    runs, lengths, _ = BUILDERS["C2"](effects(0.3, ENOUGH))
    frames = Frames.of(runs, lengths, NO_POSITIONS)
    at_max = lengths[lengths["length"] == 8].set_index("run_id")["seq_acc"]
    assert frames.runs.set_index("run_id")[ID_SEQ_ACC_AT_MAX].equals(at_max.loc[runs["run_id"]])

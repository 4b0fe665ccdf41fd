"""The names of the MLflow schema a study writes and the analysis reads: experiment, run and
logged-model tags, the metrics and tables more than one module reads or writes, and the
artifacts. Renaming one orphans every store written before: old stores must still load.

Imports nothing (the work queue and the analysis import it).
"""

PREFIX = "attnstudy."  # the namespace of the project's own tags

# Experiment tags
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # not GenAI

# Tags of every run of a study
ROLE = "attnstudy.role"  # STUDY_ROLE on the parent run, TRIAL_ROLE on a trial run
STUDY_ROLE, TRIAL_ROLE = "study", "trial"
STUDY = "attnstudy.study"  # the study's name
GIT_COMMIT = "attnstudy.git_commit"  # the code's commit, "unknown" outside a checkout
GIT_DIRTY = "attnstudy.git_dirty"  # "true" if tracked files had local edits, or "unknown"
CPU = "attnstudy.cpu"  # the CPU's model name
THREADS = "attnstudy.torch_threads"  # torch threads per worker
NOTE = "mlflow.note.content"  # the run's description in the MLflow UI
SOURCE_NAME, SOURCE_TYPE = "mlflow.source.name", "mlflow.source.type"  # what ran it
SOURCE_COMMIT = "mlflow.source.git.commit"  # GIT_COMMIT, where MLflow's UI shows it
USER = "mlflow.user"  # who ran it

# Parent-run tags
DESCRIPTION = "attnstudy.description"  # the study file's description, as written
GRID_SIZE = "attnstudy.grid_size"  # the number of grid points
GRID_FINGERPRINT = "attnstudy.grid_fingerprint"  # the grid's fingerprint (work_queue)
OPTUNA_STORAGE = "attnstudy.optuna_storage"  # the Optuna storage URL, redacted
BLOCKS = "attnstudy.blocks"  # the study file's block names, comma-separated (if named)
ENVIRONMENT = "attnstudy.environment"  # whether the packages are those constraints.txt pins

# Trial-run tags (besides one per axis and per fact of its variant: tracking.variant_tags)
PARENT_RUN = "mlflow.parentRunId"  # the study's parent run
TRIAL = "attnstudy.trial"  # the Optuna trial number
STATUS = "attnstudy.status"  # ok | diverged | failed | killed, once the run ends
REASON = "attnstudy.reason"  # why it diverged, failed or was killed
GRID_KEY = "attnstudy.grid_key"  # the grid point's key (GridPoint.key)
CONFIG_HASH = "attnstudy.config_hash"  # the hash of its config
BLOCK = "attnstudy.block"  # the blocks that declare the point, comma-separated (if named)
SOLVABLE = "attnstudy.solvable"  # "false" if the point cannot solve its task by construction
DEVICE = "attnstudy.device"  # the device it trained on
LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"  # MLflow's list of the run's tables

# Trial-run tags: what the classes of its variant declared when it ran, beside its axes
# (tracking.variant_tags; a flag "true" or "false"), for grouping runs in the MLflow UI and
# read by the analysis as frame columns of the same names (analysis.variants.fact)
ENCODING_FAMILY = "encoding_family"  # PositionalEncoding.family
SHIFT_INVARIANT = "shift_invariant"  # PositionalEncoding.shift_invariant(its score)
ENCODING_MODERN = "encoding_modern"  # PositionalEncoding.modern
SCORE_MODERN = "score_modern"  # Score.modern
USES_POSITIONS = "uses_positions"  # Arch.uses_positions
USES_ATTENTION = "uses_attention"  # Arch.uses_attention
LONG_RANGE = "long_range"  # Task.long_range
VARIANT_FACTS = (
    ENCODING_FAMILY,
    SHIFT_INVARIANT,
    ENCODING_MODERN,
    SCORE_MODERN,
    USES_POSITIONS,
    USES_ATTENTION,
    LONG_RANGE,
)

# Logged-model tags
TRIAL_RUN = "attnstudy.trial_run"  # the trial run the model's weights come from

# Bench-run tags (bench/report.py)
GOALS_MET = "attnstudy.goals_met"  # whether the benchmark met its goals


def version_tag(package: str) -> str:
    """Tag of every run: the version of `package` that produced it."""
    return f"{PREFIX}version.{package}"


def model_source(encoding: str) -> str:
    """Parent-run tag: the trial run whose model is the encoding's logged model."""
    return f"{PREFIX}model.{encoding}"


def best_variant(encoding: str) -> str:
    """Parent-run tag: the encoding's best variant by validation."""
    return f"best.{encoding}"


def points_metric(state: str) -> str:
    """Parent-run metric: the number of grid points in `state`."""
    return f"points_{state}"


# Trial-run metrics at step = optimizer steps done
TRAIN_LOSS = "train_loss"  # training loss, nats per token
VAL_SEQ_ACC = "val_seq_acc"  # in-distribution validation exact match
VAL_NEXT_TOKEN_ACC = "val_next_token_acc"  # validation next-token accuracy (teacher forced)
LR = "lr"  # the learning rate of the step
GRAD_NORM = "grad_norm"  # the gradient's norm before clipping
STEP_METRICS = (TRAIN_LOSS, LR, GRAD_NORM)  # logged every tracking.LOG_EVERY steps

# Trial-run metrics at step = length
EVAL_SEQ_ACC = "eval_seq_acc"  # test exact match at that length
EVAL_TOKEN_ACC = "eval_token_acc"  # test token accuracy at that length

# Trial-run summary metrics (step 0)
BEST_VAL_SEQ_ACC = "best_val_seq_acc"  # VAL_SEQ_ACC of the checkpoint kept: the trial's value
BEST_VAL_NEXT_TOKEN_ACC = "best_val_next_token_acc"  # VAL_NEXT_TOKEN_ACC of that checkpoint
SELECTION = (BEST_VAL_SEQ_ACC, BEST_VAL_NEXT_TOKEN_ACC)  # choose variants: validation only
ID_SEQ_ACC = "id_seq_acc"  # test exact match, mean over the training lengths
ID_SEQ_ACC_AT_MAX = "id_seq_acc_at_max"  # test exact match at the longest training length
ID_TOKEN_ACC = "id_token_acc"  # test token accuracy, mean over the training lengths
OOD_SEQ_ACC = "ood_seq_acc"  # test exact match, mean over every length beyond training
OOD_TOKEN_ACC = "ood_token_acc"  # test token accuracy, the same
NEAR_OOD_SEQ_ACC = "near_ood_seq_acc"  # test exact match, mean over L < length ≤ 2L
NEAR_OOD_TOKEN_ACC = "near_ood_token_acc"  # test token accuracy, the same
TRAIN_SECONDS = "train_seconds"  # wall time of the trial's training and evaluation
EXTRAPOLATION_LEN = "extrapolation_len"  # longest L: exact match ≥ 0.9 at every length ≤ L
EXTRAPOLATION_LEN_50 = "extrapolation_len_50"  # the same at exact match 0.5
BEST_STEP = "best_step"  # the optimizer steps of the checkpoint kept
STEPS_TRAINED = "steps_trained"  # optimizer steps done (early stopping may end sooner)
STEPS_TO_95 = "steps_to_95"  # steps to validation exact match 0.95, NaN if never
N_PARAMS = "n_params"  # the model's parameters
STEP_TIME_MS = "step_time_ms"  # mean wall time of a training step
ACTIVATION_MB = "activation_mb"  # peak activation memory of a training step
VALIDATION_SECONDS = "validation_seconds"  # wall time of the validations, summed
EVALUATION_SECONDS = "evaluation_seconds"  # wall time of the final evaluation
MEASUREMENT_SECONDS = "measurement_seconds"  # wall time of the attention measurement
PEAK_MEM_MB = "peak_mem_mb"  # ACTIVATION_MB in older runs and in the analysis's frames
ATTN_SHARPNESS = "attn_sharpness"  # the largest attention weight, mean over heads, queries
ATTN_ALIGNMENT = "attn_alignment"  # attention mass on the copied source token, best head
ATTN_ALIGNMENT_UNIFORM = "attn_alignment_uniform"  # the same for uniform attention
ATTN_ALIGNMENT_INIT = "attn_alignment_init"  # the same at initialisation
HEAD_DIVERSITY = "head_diversity"  # Jensen–Shannon divergence between heads, mean
HEAD_DIVERSITY_INIT = "head_diversity_init"  # the same at initialisation

# Token accuracy by target position
POSITION_TABLE = "per_position.json"  # a trial's table: split, length, target_pos, token_acc
POSITION_BY_LENGTH_KEY = "pos_token_acc_id_len"  # before the table, by length: see the stride
POSITION_OOD_KEY = "pos_token_acc_ood"  # before the table: step = target position
POSITION_STRIDE = 100_000  # POSITION_BY_LENGTH_KEY step: length·POSITION_STRIDE + position

# Artifacts
GRID_ARTIFACT = "grid.json"  # parent run: every grid key of the study
ENVIRONMENT_ARTIFACT = "environment.txt"  # parent run: the package versions of the last launch
MODEL_ARTIFACT = "model.pt"  # trial run: the weights of the checkpoint kept

"""A tidy `runs` row (config and accuracy columns) for hand-built test frames."""

BASE_RUN = {
    "status": "ok",
    "task": "copy",
    "arch": "decoder",
    "score": "scaled_dot",
    "position": "rope",
    "randomized": False,
    "heads": 4,
    "d_model": 64,
    "n_layers": 2,
    "lr": 1e-3,
    "seed": 0,
    "train_max_len": 20,
    "eval_max_len": 80,
    "id_seq_acc": 1.0,
    "id_token_acc": 1.0,
    "ood_seq_acc": 0.0,
    "ood_token_acc": 0.5,
    "extrapolation_len": 20,
}

"""`redact` (attnstudy.redact) masks the password of every URL form and leaves text without
secrets alone. That no command shows or stores a secret is test_redaction.py's."""

import pytest
from commands import SECRET

# What redact() makes of a URL (or a message holding one): the password masked, the rest
# kept, whatever the URL's form.
REDACTED = [
    (
        "postgresql://attnstudy:{s}@db.lab.example/optuna",
        "postgresql://attnstudy:***@db.lab.example/optuna",
    ),
    (
        "postgresql+psycopg2://attnstudy:{s}@db.lab.example:5432/optuna",
        "postgresql+psycopg2://attnstudy:***@db.lab.example:5432/optuna",
    ),
    ("http://worker1:{s}@db.lab.example:5000", "http://worker1:***@db.lab.example:5000"),
    ("https://worker1:{s}@mlflow.lab.example/", "https://worker1:***@mlflow.lab.example/"),
    (
        "postgresql://attnstudy@db/optuna?password={s}",
        "postgresql://attnstudy@db/optuna?password=***",
    ),
    (
        "postgresql://u@db/optuna?sslmode=require&sslpassword={s}&x=1",
        "postgresql://u@db/optuna?sslmode=require&sslpassword=***&x=1",
    ),
    ("sqlite:////tmp/runs/optuna.db?password={s}", "sqlite:////tmp/runs/optuna.db?password=***"),
    ("https://mlflow.lab.example/?token={s}", "https://mlflow.lab.example/?token=***"),
    ("https://h/?access_token={s}#x", "https://h/?access_token=***#x"),
    ("mysql://u:p%40{s}@db/x", "mysql://u:***@db/x"),  # a percent-encoded password
    ("postgresql://u:pa/ss@{s}@db/optuna", "postgresql://u:***@db/optuna"),  # unencoded / and @
    ("postgresql://:{s}@db/optuna", "postgresql://:***@db/optuna"),  # a password, no user
    ("https://{s}@mlflow.lab.example", "https://***@mlflow.lab.example"),  # a token as user
    (
        "--storage postgresql://u:{s}@db/optuna: cannot open it (timeout)",
        "--storage postgresql://u:***@db/optuna: cannot open it (timeout)",
    ),
    ("started in 'http://u:{s}@h:5000' (2 points)", "started in 'http://u:***@h:5000' (2 points)"),
    ("host=db user=u password={s} dbname=optuna", "host=db user=u password=*** dbname=optuna"),
    ("MLFLOW_TRACKING_PASSWORD={s}", "MLFLOW_TRACKING_PASSWORD=***"),
]
UNCHANGED = [
    "sqlite:////tmp/runs/optuna.db",
    "postgresql+psycopg2://attnstudy@db.lab.example/optuna",
    "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning&orderByAsc=true",
    "file:///tmp/mlartifacts/a@b/model.pt",
    "mlflow-artifacts:/1/abc/artifacts",
    "study tiny: 4 grid points, 4 to run (1 worker x 1 thread)",
    "",
]


@pytest.mark.parametrize(("shown", "redacted"), REDACTED)
def test_redact_masks_the_password_of_every_url_form(shown, redacted):
    from attnstudy.redact import redact

    assert redact(shown.format(s=SECRET)) == redacted
    assert redact(redacted) == redacted  # idempotent


@pytest.mark.parametrize("shown", UNCHANGED)
def test_redact_leaves_text_without_secrets_alone(shown):
    from attnstudy.redact import redact

    assert redact(shown) == shown

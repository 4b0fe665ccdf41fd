"""Scale-out on real engines, as the README's recipe sets it up: a real PostgreSQL (Optuna's
storage and MLflow's backend store) and the real `mlflow server --app-name basic-auth`,
started with the configuration file, command line and users script read from the README's
"Scale-out: many machines" section. Two `attnstudy study run` processes, each with a user
of its own, share one study; a request without credentials, a missing or wrong password
and a user without permission on the study's experiment are refused before anything is
written; no password reaches any output or store."""

from __future__ import annotations

import configparser
import functools
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from builders import TINY_STUDY, study_file
from commands import ATTNSTUDY, SECRET, assert_one_error_line, attnstudy, clean_env
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from servers import dump, free_port, listens, mlflow_server, postgres
from study_checks import ARTIFACTS, check_one_result_per_point

from attnstudy.schema import EVAL_SEQ_ACC
from attnstudy.stores import make_stores

README = Path(__file__).resolve().parent.parent / "README.md"
USERS = {"scaleout": ["worker1", "worker2", "alice"], "locked": ["worker1"]}
USERS["elsewhere"] = ["outsider"]  # permission on another experiment only


def recipe() -> dict[str, str]:
    """The code blocks of the README's scale-out section, by what they hold."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Scale-out: many machines\n") :]
    section = section[: section.index("\n## ", 1)]
    found = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        if lang == "ini":
            found["ini"] = body
        elif lang == "python":
            found["users.py"] = body
        elif "mlflow server" in body:
            found["server"] = body
        elif "attnstudy study run" in body:
            found["worker"] = body
    assert set(found) == {"ini", "users.py", "server", "worker"}, sorted(found)
    return found


def test_the_readme_recipe_authenticates_and_puts_no_password_on_a_command_line():
    blocks = recipe()
    assert "default_permission = NO_PERMISSIONS" in blocks["ini"]
    assert "--app-name basic-auth" in blocks["server"]
    assert "export MLFLOW_AUTH_CONFIG_PATH=/srv/attnstudy/basic_auth.ini" in blocks["server"]
    assert 'read -rsp "first admin password: " MLFLOW_AUTH_ADMIN_PASSWORD' in blocks["server"]
    shell = blocks["server"] + blocks["worker"]
    assert not re.search(r"://[^/\s@]*:[^/\s@]*@", shell), "a password in a URL"
    assert "--tracking-uri http://" in blocks["worker"] and "PASSWORD" not in blocks["worker"]
    assert "update_user_password(" in blocks["users.py"]  # the admin's password replaced


LAB_SERVER = {  # what the README's server command says, and what runs here instead
    "/srv/attnstudy/": "{root}/",
    ".venv/bin/": f"{Path(sys.executable).parent}/",
    "postgresql+psycopg2://attnstudy@localhost/mlflow": "{backend_store}",
    "--host 10.0.0.5 --port 5000 --allowed-hosts db.lab.example:5000": (
        "--host 127.0.0.1 --port {port} --allowed-hosts 127.0.0.1:{port} --workers 1"
    ),
}


def server_command(root: Path, backend_store: str, port: int) -> tuple[list, dict]:
    """The README's server commands, run by bash as written, with the test's folder,
    stores, 127.0.0.1 and `port` in place of the lab's, and `--workers 1` (the machine has
    2 cores); the first admin password is typed from the file `root/bootstrap`."""
    script = recipe()["server"]
    for lab, here in LAB_SERVER.items():
        assert lab in script, f"the README's server command lacks {lab}"
        script = script.replace(lab, here.format(root=root, backend_store=backend_store, port=port))
    assert script.count("mlflow server --app-name basic-auth") == 1
    return ["bash", "-euc", f"exec <{root}/bootstrap\n{script}"], clean_env()


@dataclass
class Lab:
    database: str  # the PostgreSQL server's URL (append /optuna or /mlflow)
    tracking: str  # the mlflow server's URL
    root: Path
    bootstrap: str  # the admin password the server first started with

    @property
    def admin(self) -> Path:
        return self.root / "admin"  # where the admin runs users.py

    def password(self, user: str) -> str:
        found = configparser.ConfigParser()
        found.read(self.admin / "credentials" / user)
        return found["mlflow"]["mlflow_tracking_password"]

    def passwords(self) -> list[str]:
        return [self.password(p.name) for p in (self.admin / "credentials").iterdir()]

    def as_user(self, user: str | None) -> dict:
        """The environment of a process of `user`, whose credentials are in the MLflow
        credentials file in its home folder (none: a home without one)."""
        home = self.root / "homes" / (user or "nobody")
        if user and not home.exists():
            (home / ".mlflow").mkdir(parents=True)
            shutil.copy(self.admin / "credentials" / user, home / ".mlflow" / "credentials")
            (home / ".mlflow" / "credentials").chmod(0o600)
        home.mkdir(parents=True, exist_ok=True)
        real = Path.home()  # matplotlib's and torch's caches stay where they are
        caches = {"MPLCONFIGDIR": str(real / ".config" / "matplotlib")}
        caches["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME", str(real / ".cache"))
        return clean_env() | caches | {"HOME": str(home)}

    def with_password(self, user: str, password: str | None) -> dict:
        """The environment of a process given `user` and `password` in MLflow's variables."""
        env = self.as_user(None) | {"MLFLOW_TRACKING_USERNAME": user}
        return env | ({"MLFLOW_TRACKING_PASSWORD": password} if password is not None else {})

    def login(self, monkeypatch, user: str) -> MlflowClient:
        """This process's MLflow credentials: `user`'s (MLflow reads them from the
        environment at each request; monkeypatch restores it after the test)."""
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", self.password(user))
        return MlflowClient(self.tracking)


def run_users_script(lab: Lab, study: str, users: list[str], admin_password: str) -> None:
    """The README's users.py, run by the admin as the README says."""
    script = lab.admin / "users.py"
    script.write_text(recipe()["users.py"])
    env = clean_env() | {"MLFLOW_TRACKING_URI": lab.tracking, "MLFLOW_TRACKING_USERNAME": "admin"}
    env["MLFLOW_TRACKING_PASSWORD"] = admin_password
    done = subprocess.run(
        [sys.executable, script, study, *users],
        cwd=lab.admin,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert admin_password not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The README's recipe on 127.0.0.1, with its users.py run for three studies."""
    root = tmp_path_factory.mktemp("lab")
    ini = recipe()["ini"]
    assert "database_uri = sqlite:////srv/attnstudy/basic_auth.db\n" in ini
    (root / "basic_auth.ini").write_text(ini.replace("/srv/attnstudy/", f"{root}/"))
    artifacts, bootstrap = root / "mlartifacts", secrets.token_urlsafe(16)
    (root / "bootstrap").write_text(bootstrap + "\n")
    with postgres() as database:
        command = functools.partial(server_command, root, f"{database}/mlflow")
        with mlflow_server(f"{database}/mlflow", artifacts, command) as tracking:
            found = Lab(database, tracking, root, bootstrap)
            found.admin.mkdir()
            for study, users in USERS.items():  # the admin's password changes each time
                admin = found.password("admin") if study != "scaleout" else bootstrap
                run_users_script(found, study, users, admin)
            yield found


@pytest.fixture
def as_admin(lab, monkeypatch):
    """This process's MLflow credentials: the admin's (restored after the test)."""
    return lab.login(monkeypatch, "admin")


def status_of(url: str, user: str | None = None, password: str = "") -> int:
    request = urllib.request.Request(url)
    if user:
        token = b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_request_without_credentials_gets_401_and_the_first_admin_password_is_gone(lab):
    search = f"{lab.tracking}/api/2.0/mlflow/experiments/search?max_results=10"
    assert status_of(f"{lab.tracking}/health") == 200  # MLflow's only open route
    assert status_of(search) == 401
    assert status_of(search, "admin", lab.bootstrap) == 401  # replaced at set-up
    assert status_of(search, "worker1", "wrong") == 401
    assert status_of(search, "admin", lab.password("admin")) == 200
    assert status_of(search, "worker1", lab.password("worker1")) == 200
    modes = {p.stat().st_mode & 0o777 for p in (lab.admin / "credentials").iterdir()}
    assert modes == {0o600}


def launch(spec, runs: Path, storage: str, lab: Lab, user: str, log: Path):
    """`attnstudy study run` as the README's worker command, with `user`'s credentials file."""
    argv = [ATTNSTUDY, "study", "run", spec.path, "--workers", "1", "--runs-dir", runs]
    argv += ["--storage", storage, "--tracking-uri", lab.tracking]
    # nothing is killed here: a grace no load reaches, so no live worker is taken for dead
    argv += ["--heartbeat", "1", "--grace", "120"]
    with log.open("a") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=lab.as_user(user),
        )


def with_password_in_url(database: str) -> str:
    """The database URL with a password (PostgreSQL trusts local users here and ignores
    it): whatever the user passes, no output or store may show it."""
    return database.replace("attnstudy@", f"attnstudy:{SECRET}@")


def test_two_workers_with_their_own_credentials_complete_the_study(lab, as_admin, tmp_path):
    spec = study_file(tmp_path, TINY_STUDY | {"name": "scaleout"})
    runs, log = tmp_path / "runs", tmp_path / "out.log"
    storage = with_password_in_url(f"{lab.database}/optuna")
    workers = [launch(spec, runs, storage, lab, user, log) for user in ("worker1", "worker2")]
    # the timeout only bounds a hang: 31 s measured with both cores busy
    assert [w.wait(timeout=900) for w in workers] == [0, 0], log.read_text()
    printed = [log.read_text()]
    assert "View run" not in printed[0]  # MLflow prints no URL per run

    stores = make_stores(runs, storage, lab.tracking)
    results, trial_runs = check_one_result_per_point(spec, stores)
    assert len(results) == len(trial_runs) == 4
    for run in trial_runs:
        assert {a.path for a in as_admin.list_artifacts(run.info.run_id)} == ARTIFACTS
        history = as_admin.get_metric_history(run.info.run_id, EVAL_SEQ_ACC)
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    assert not runs.exists()  # a worker keeps nothing on its own disk

    # a lab member, her password in MLflow's variables: status, report and UI
    alice = lab.with_password("alice", lab.password("alice"))
    status, out = attnstudy("study", "status", spec.path, "--runs-dir", runs, "--storage", storage)
    assert status == 0 and "study scaleout: 4 grid points: 4 done" in out, out
    printed.append(out)
    report = ["report", "--study", spec.name, "--out", tmp_path / "report"]
    status, out = attnstudy(*report, "--tracking-uri", lab.tracking, env=alice)
    assert status == 0, out
    printed.append(out)
    status, out = attnstudy("ui", "--study", spec.name, "--tracking-uri", lab.tracking, env=alice)
    assert status == 0 and f"{lab.tracking}/#/experiments/" in out, out
    printed.append(out)

    # no password in any output, either store, the server's log or the report
    shown = [*printed, dump(lab.database, "optuna"), dump(lab.database, "mlflow")]
    shown.append((lab.root / "mlflow-server.log").read_text())
    shown += [p.read_text(errors="replace") for p in (tmp_path / "report").rglob("*.*")]
    assert "attnstudy:***@127.0.0.1" in dump(lab.database, "mlflow")  # the storage tag
    for secret in (SECRET, lab.bootstrap, *lab.passwords()):
        assert not any(secret in text for text in shown), "a password is shown"


def nothing_written(lab: Lab, client: MlflowClient, study: str) -> None:
    assert study not in optuna.get_all_study_names(f"{lab.database}/optuna")
    experiment = client.get_experiment_by_name(study)
    assert client.search_runs([experiment.experiment_id]) == []
    assert experiment.tags == {}  # not even the tag a study sets on its experiment


def refused_everywhere(lab: Lab, tmp_path: Path, env: dict, shows: str, every=True) -> None:
    """`study run`, `report` and `ui` (or `study run` only) of study `locked` as `env` has
    it: one error line saying `shows`, exit 2, before any training (within a minute)."""
    spec = study_file(tmp_path, TINY_STUDY | {"name": "locked"})
    storage = f"{lab.database}/optuna"
    run = ["study", "run", spec.path, "--runs-dir", tmp_path / "runs", "--storage", storage]
    for command in (
        [*run, "--tracking-uri", lab.tracking],
        [
            "report",
            "--study",
            "locked",
            "--out",
            tmp_path / "report",
            "--tracking-uri",
            lab.tracking,
        ],
        ["ui", "--study", "locked", "--tracking-uri", lab.tracking],
    )[: 3 if every else 1]:
        status, out = attnstudy(*command, env=env, timeout=120)
        assert_one_error_line(status, out, shows)
        assert not (tmp_path / "report").exists() and not (tmp_path / "runs").exists()
        assert not any(p in out for p in (SECRET, *lab.passwords())), out


@pytest.mark.parametrize(
    ("who", "shows"),
    [
        ("nobody", "it asks for a user and a password, and none is set; set them in "),
        ("no password", "it asks for a password, and none is set for user 'worker1'"),
        ("wrong password", "it refuses the password of user 'worker1' (wrong password"),
        ("wrong user", "it refuses the password of user 'worker9' (wrong password"),
    ],
)
def test_a_missing_or_wrong_password_is_one_error_line_and_nothing_is_written(
    lab, as_admin, tmp_path, who, shows
):
    env = {
        "nobody": lab.as_user(None),
        "no password": lab.with_password("worker1", None),
        "wrong password": lab.with_password("worker1", lab.password("worker1") + "x"),
        "wrong user": lab.with_password("worker9", lab.password("worker1")),
    }[who]
    every = who in ("nobody", "wrong password")  # the others: `study run` only
    refused_everywhere(lab, tmp_path, env, f"--tracking-uri {lab.tracking}: {shows}", every)
    nothing_written(lab, as_admin, "locked")


def test_a_user_without_permission_on_the_experiment_cannot_write_to_it(
    lab, as_admin, tmp_path, monkeypatch
):
    locked = as_admin.get_experiment_by_name("locked").experiment_id
    outsider = lab.login(monkeypatch, "outsider")
    elsewhere = outsider.get_experiment_by_name("elsewhere").experiment_id
    outsider.set_terminated(outsider.create_run(elsewhere).info.run_id)  # its own: allowed
    for what, write in (
        ("create a run", lambda: outsider.create_run(locked)),
        ("tag", lambda: outsider.set_experiment_tag(locked, "x", "y")),
        ("read", lambda: outsider.get_experiment(locked)),
    ):
        with pytest.raises(MlflowException, match="403|PERMISSION_DENIED"):
            write()
            pytest.fail(f"the outsider could {what}")
    shows = "user 'outsider' may not write to the study's experiment 'locked'"
    refused_everywhere(lab, tmp_path, lab.as_user("outsider"), shows)
    nothing_written(lab, lab.login(monkeypatch, "admin"), "locked")


def test_a_server_that_loses_its_free_port_starts_on_another(monkeypatch):
    """Another program may bind the free port before the server does; the server exits
    saying so, and starts again on a fresh port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr("servers.free_port", lambda: next(ports, None) or free_port())
        with postgres() as url:
            port = int(url.rsplit(":", 1)[1])
            assert port != taken.getsockname()[1]
            assert listens(os.getpgid(0), taken.getsockname()[1])
            assert not listens(os.getpgid(0), port)  # the server's, not ours

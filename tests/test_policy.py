"""The environment chain and its policy, from defaults, modelrail.toml and MODELRAIL_* variables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import ConfigError, EnvironmentNotFoundError, PromotionError
from modelrail.policy import GatePolicy, PromotionPolicy, default_policy

MODEL = "pets-classifier"


def policy_from(
    tmp_path: Path, toml: str | None, environ: Mapping[str, str] | None = None
) -> PromotionPolicy:
    init_project(tmp_path)
    if toml is not None:
        (tmp_path / "modelrail.toml").write_text(toml, encoding="utf-8")
    return load_settings(cwd=tmp_path, environ=dict(environ or {}), create=False).policy


# -- defaults ---------------------------------------------------------------------------------


def test_default_chain_is_dev_staging_prod_with_stricter_gates_towards_prod(
    tmp_path: Path,
) -> None:
    policy = load_settings(cwd=tmp_path, environ={}, create=False).policy  # no file at all
    assert policy == default_policy()
    assert policy.chain == ("dev", "staging", "prod")
    assert (policy.auto_enter_first, policy.primary_metric) == (True, "accuracy")
    assert (policy.notify_command, policy.notify_url) == (None, None)
    dev, staging, prod = (policy.environment(n).gates for n in policy.chain)
    assert dev == GatePolicy(require_previous=False, signature_compatible=False, smoke_test=True)
    assert staging == GatePolicy()
    assert (staging.require_previous, staging.signature_compatible, staging.smoke_test) == (
        True,
        True,
        True,
    )
    assert (staging.runtime_compatible, staging.approval) == (False, False)
    assert prod == GatePolicy(runtime_compatible=True, approval=True, allow_pickle=False)
    assert (dev.allow_pickle, staging.allow_pickle, prod.allow_pickle) == (True, True, False)
    assert (prod.approval_expires_hours, prod.smoke_latency_ms) == (72.0, 500.0)
    assert (prod.min_metrics, prod.max_metrics, prod.beat_incumbent) == ({}, {}, False)
    assert all(policy.environment(n).settings == {} for n in policy.chain)
    assert (policy.previous("dev"), policy.previous("staging"), policy.previous("prod")) == (
        None,
        "dev",
        "staging",
    )


def test_the_commented_file_written_by_init_gives_the_defaults(tmp_path: Path) -> None:
    assert policy_from(tmp_path, None) == default_policy()
    text = (tmp_path / "modelrail.toml").read_text(encoding="utf-8")
    assert 'chain = ["dev", "staging", "prod"]' in text
    assert "# [environments.prod.settings]" in text


def test_gates_and_settings_are_read_from_the_file(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        "[environments]\n"
        'primary_metric = "recall"\n'
        "auto_enter_first = false\n"
        'notify_command = "./hook.sh"\n'
        "[environments.staging]\n"
        "min = { accuracy = 0.85, recall = 1 }\n"
        "max = { false_positive_rate = 0.1 }\n"
        "beat_incumbent = true\n"
        "margin = 0.02\n"
        "smoke_latency_ms = 50\n"
        "min_hours_in_previous = 12\n"
        "[environments.prod]\n"
        "approval = false\n"
        "runtime_compatible = false\n"
        "approval_expires_hours = 1.5\n",
    )
    assert (policy.primary_metric, policy.auto_enter_first) == ("recall", False)
    assert (policy.notify_command, policy.notify_url) == ("./hook.sh", None)
    staging = policy.environment("staging").gates
    assert staging.min_metrics == {"accuracy": 0.85, "recall": 1}
    assert staging.max_metrics == {"false_positive_rate": 0.1}
    assert (staging.beat_incumbent, staging.margin, staging.smoke_latency_ms) == (True, 0.02, 50)
    assert staging.min_hours_in_previous == 12
    assert staging.require_previous and staging.signature_compatible  # defaults kept
    prod = policy.environment("prod").gates
    assert (prod.approval, prod.runtime_compatible, prod.approval_expires_hours) == (
        False,
        False,
        1.5,
    )


# -- a renamed, extended chain ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted_model() -> tuple[Any, pd.DataFrame]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y), X


@pytest.fixture
def qa_clients(store_url: str, tmp_path: Path) -> Iterator[tuple[Client, Client]]:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text(
        "[environments]\n"
        'chain = ["dev", "qa", "prod"]\n'
        "[environments.qa]\n"
        "min = { accuracy = 0.8 }\n",
        encoding="utf-8",
    )
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with (
        Client(store_url=store_url, settings=settings, user="alice") as alice,
        Client(store_url=store_url, settings=settings, user="bob") as bob,
    ):
        yield alice, bob


def test_a_renamed_chain_works_end_to_end(
    qa_clients: tuple[Client, Client], fitted_model: tuple[Any, pd.DataFrame]
) -> None:
    alice, bob = qa_clients
    model, X = fitted_model
    with alice.start_run("pets") as run:
        run.log_metric("accuracy", 0.9)
        run.log_model(model, MODEL, input_example=X[:5])
    assert [(h.environment, h.version) for h in alice.board()] == [("dev", 1)]
    with pytest.raises(PromotionError, match="never been in qa; promote it to qa before prod"):
        alice.promote(f"{MODEL}:1", to="prod")
    with pytest.raises(EnvironmentNotFoundError, match="the chain is dev -> qa -> prod"):
        alice.promote(f"{MODEL}:1", to="staging")
    outcome = alice.promote(f"{MODEL}:1", to="qa")
    assert ("min accuracy >= 0.8", True, "0.9") in [
        (g.gate, g.passed, g.detail) for g in outcome.gates
    ]
    request = alice.promote(f"{MODEL}:1", to="prod").request  # the last one needs approval
    assert request is not None
    bob.approve(request.id)
    assert [v.name for v in alice.environments()] == ["dev", "qa", "prod"]
    assert {(h.environment, h.version) for h in alice.board()} == {
        ("dev", 1),
        ("qa", 1),
        ("prod", 1),
    }
    assert [(e.action, e.environment) for e in alice.history(MODEL)] == [
        ("auto", "dev"),
        ("promote", "qa"),
        ("request", "prod"),
        ("approve", "prod"),
    ]


def test_an_added_environment_gets_the_middle_defaults(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path, '[environments]\nchain = ["dev", "staging", "pre-prod", "prod"]\n'
    )
    assert policy.chain == ("dev", "staging", "pre-prod", "prod")
    assert policy.environment("pre-prod").gates == GatePolicy()
    assert policy.previous("prod") == "pre-prod"
    assert policy.environment("prod").gates.approval
    assert not policy.environment("prod").gates.allow_pickle


def test_allow_pickle_is_set_per_environment(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        '[environments]\nchain = ["dev", "qa", "live"]\n'
        "[environments.dev]\nallow_pickle = false\n"
        "[environments.live]\nallow_pickle = true\n",
    )
    assert [policy.environment(n).gates.allow_pickle for n in policy.chain] == [
        False,
        True,
        True,
    ]
    # A chain of one environment has only the first's defaults (pickles allowed).
    alone = policy_from(tmp_path, '[environments]\nchain = ["prod"]\n')
    assert alone.environment("prod").gates.allow_pickle


# -- wrong keys and values are reported with their line -------------------------------------

BAD_FILES = {
    "unknown gate key": (
        '# gates\n[environments]\nchain = ["dev", "staging", "prod"]\n\n'
        "[environments.staging]\nmin = { accuracy = 0.8 }\nmin_accuracy = 0.9\n",
        7,
        "unknown key 'min_accuracy' in [environments.staging]; known: require_previous, min,",
    ),
    "wrong value in the second table with the key": (
        "[environments.staging]\napproval = false\n\n[environments.prod]\n"
        '# someone else approves\napproval = "yes"\n',
        6,
        "[environments.prod] approval must be true or false, got 'yes'",
    ),
    "allow_pickle that is not a boolean": (
        "[environments.prod]\napproval = true\nallow_pickle = 0\n",
        3,
        "[environments.prod] allow_pickle must be true or false, got 0",
    ),
    "negative margin": (
        "[environments.staging]\nbeat_incumbent = true\nmargin = -0.01\n",
        3,
        "[environments.staging] margin must be a finite number >= 0, got -0.01",
    ),
    "boolean where a number goes": (
        "[environments.prod]\nsmoke_latency_ms = true\n",
        2,
        "smoke_latency_ms must be a finite number >= 0, got True",
    ),
    "metric threshold not a number": (
        '[environments]\n\n[environments.staging]\nmin = { accuracy = "high" }\n',
        4,
        "[environments.staging] min must be a table of metric name = finite number",
    ),
    "environment table not in the chain": (
        '[environments]\nchain = ["dev", "prod"]\n\n[environments.staging]\napproval = true\n',
        4,
        "[environments.staging] is not in the chain ['dev', 'prod']",
    ),
    "empty chain": (
        "# the chain\n[environments]\nchain = []\n",
        3,
        "the environment chain is empty",
    ),
    "badly named environment": (
        '[environments]\nauto_enter_first = true\nchain = ["dev", "Prod"]\n',
        3,
        "environment name 'Prod' must be lower-case letters, digits, '-' or '_'",
    ),
    "repeated environment": (
        '[environments]\nchain = ["dev", "prod", "dev"]\n',
        2,
        "the chain ['dev', 'prod', 'dev'] repeats a name",
    ),
    "chain not a list": (
        '[environments]\nchain = "dev"\n',
        2,
        "[environments] chain must be a list of names, got 'dev'",
    ),
    "unknown top-level key": (
        '[environments]\nchain = ["dev", "prod"]\nnotify = "x"\n',
        3,
        "unknown key 'notify' in [environments]",
    ),
    "auto_enter_first not a boolean": (
        '[environments]\nauto_enter_first = "yes"\n',
        2,
        "[environments] auto_enter_first must be true or false, got 'yes'",
    ),
    "primary_metric not a string": (
        "[environments]\nprimary_metric = 3\n",
        2,
        "[environments] primary_metric must be a string, got 3",
    ),
    "notify_url not a string": (
        "[environments]\n\nnotify_url = 9000\n",
        3,
        "[environments] notify_url must be a string, got 9000",
    ),
    "unknown setting": (
        "[environments.prod]\napproval = true\n\n[environments.prod.settings]\n"
        'batch_output = "out.parquet"\nport = 8080\n',
        6,
        "unknown setting 'port' in [environments.prod.settings]; known: batch_output,",
    ),
    "port out of range": (
        "[environments.prod.settings]\nserving_port = 70000\n",
        2,
        "[environments.prod.settings] serving_port must be a port number 1-65535, got 70000",
    ),
    "port as a string": (
        '[environments.staging.settings]\n\nserving_port = "8080"\n',
        3,
        "serving_port must be a port number 1-65535, got '8080'",
    ),
    "setting not a string": (
        "[environments.prod.settings]\nserving_port = 8080\nbatch_output = 5\n",
        3,
        "[environments.prod.settings] batch_output must be a string, got 5",
    ),
    "settings after a later table": (
        "[environments.prod.settings]\nserving_port = 8080\n[environments.prod]\napproval = 1\n",
        4,
        "[environments.prod] approval must be true or false, got 1",
    ),
    "settings not a table": (
        "[environments.prod]\napproval = true\nsettings = 5\n",
        3,
        "[environments.prod] settings must be a table",
    ),
    "inline environment table": (
        '[environments]\nchain = ["dev", "staging"]\nstaging = { approval = "yes" }\n',
        3,
        "[environments.staging] approval must be true or false, got 'yes'",
    ),
    "dotted key": (
        '[environments]\nchain = ["dev", "prod"]\nprod.approval = "yes"\n',
        3,
        "[environments.prod] approval must be true or false, got 'yes'",
    ),
    "unknown sub-table": (
        "[environments.prod]\napproval = true\n\n[environments.prod.gates]\n"
        "min = { accuracy = 0.9 }\n",
        4,
        "unknown key 'gates' in [environments.prod]",
    ),
    "environment that is not a table": (
        '[environments]\nchain = ["dev", "prod"]\nprod = 5\n',
        3,
        "[environments] prod must be a table",
    ),
    "environments that is not a table": (
        "# project settings\nenvironments = 5\n[store]\n",
        2,
        "must be a table",
    ),
    "threshold that is nan": (
        "[environments.staging]\nmin = { accuracy = nan }\n",
        2,
        "[environments.staging] min must be a table of metric name = finite number",
    ),
    "threshold that is infinite": (
        "[environments.staging]\n\nmax = { log_loss = inf }\n",
        3,
        "[environments.staging] max must be a table of metric name = finite number",
    ),
    "empty metric name": (
        '[environments.prod]\nmin = { "" = 0.9 }\n',
        2,
        "got {'': 0.9}",
    ),
    "blank metric name": (
        '[environments.prod]\nmin = { " " = 0.9 }\n',
        2,
        "got {' ': 0.9}",
    ),
    "margin that is nan": (
        "[environments.prod]\nmargin = nan\n",
        2,
        "[environments.prod] margin must be a finite number >= 0, got nan",
    ),
    "integer beyond a float": (
        "[environments.prod]\nsmoke_latency_ms = 1" + "0" * 400 + "\n",
        2,
        "[environments.prod] smoke_latency_ms must be a finite number >= 0",
    ),
}


@pytest.mark.parametrize(("toml", "line", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_wrong_key_or_value_is_reported_with_its_line(
    tmp_path: Path, toml: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from(tmp_path, toml)
    assert caught.value.message.startswith(f"{tmp_path / 'modelrail.toml'}:{line}: ")
    assert message in caught.value.message
    assert caught.value.exit_code == 2


# -- environment variables override the file ------------------------------------------------

FILE_WITH_SETTINGS = (
    "[environments]\n"
    'chain = ["dev", "staging", "prod"]\n'
    'notify_url = "http://127.0.0.1:9000/from-file"\n'
    "[environments.prod.settings]\n"
    "serving_port = 8080\n"
    'batch_output = "scores.parquet"\n'
)


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    from_file = policy_from(tmp_path, FILE_WITH_SETTINGS)
    assert from_file.chain == ("dev", "staging", "prod")
    assert from_file.notify_url == "http://127.0.0.1:9000/from-file"
    assert from_file.environment("prod").settings == {
        "serving_port": 8080,
        "batch_output": "scores.parquet",
    }
    from_env = policy_from(
        tmp_path,
        FILE_WITH_SETTINGS,
        {
            "MODELRAIL_CHAIN": "dev, qa ,prod",
            "MODELRAIL_PROD_SERVING_PORT": "9090",
            "MODELRAIL_QA_SERVING_HOST": "0.0.0.0",
            "MODELRAIL_NOTIFY_URL": "http://127.0.0.1:9000/from-env",
            "MODELRAIL_NOTIFY_COMMAND": "./hook.sh --ci",
        },
    )
    assert from_env.chain == ("dev", "qa", "prod")
    assert from_env.previous("prod") == "qa"
    assert from_env.notify_url == "http://127.0.0.1:9000/from-env"
    assert from_env.notify_command == "./hook.sh --ci"
    assert from_env.environment("prod").settings == {
        "serving_port": 9090,
        "batch_output": "scores.parquet",
    }
    assert from_env.environment("qa").settings == {"serving_host": "0.0.0.0"}


def test_environment_variable_for_a_hyphenated_environment(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        '[environments]\nchain = ["dev", "pre-prod", "prod"]\n',
        {"MODELRAIL_PRE_PROD_BATCH_TABLE": "scores"},
    )
    assert policy.environment("pre-prod").settings == {"batch_table": "scores"}


@pytest.mark.parametrize("value", ["eighty", "70000", "0"])
def test_a_wrong_port_in_an_environment_variable_is_a_config_error_naming_it(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match="MODELRAIL_PROD_SERVING_PORT"):
        policy_from(tmp_path, None, {"MODELRAIL_PROD_SERVING_PORT": value})


def test_a_wrong_chain_in_an_environment_variable_is_a_config_error_naming_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="MODELRAIL_CHAIN") as caught:
        policy_from(tmp_path, None, {"MODELRAIL_CHAIN": "dev,Prod"})
    assert "'Prod'" in caught.value.message


# -- settings through the client -------------------------------------------------------------


def test_per_environment_settings_are_readable_from_client_environments(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text(
        "[environments.staging.settings]\n"
        "serving_port = 8081\n"
        "[environments.prod.settings]\n"
        'batch_output = "postgresql+psycopg://analytics@db/scores"\n'
        'batch_table = "pet_scores"\n'
        'serving_host = "0.0.0.0"\n'
        "serving_port = 8080\n",
        encoding="utf-8",
    )
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="alice") as client:
        views = {view.name: view for view in client.environments()}
    assert list(views) == ["dev", "staging", "prod"]
    assert views["dev"].policy.settings == {}
    assert views["staging"].policy.settings == {"serving_port": 8081}
    assert views["prod"].policy.settings == {
        "batch_output": "postgresql+psycopg://analytics@db/scores",
        "batch_table": "pet_scores",
        "serving_host": "0.0.0.0",
        "serving_port": 8080,
    }
    assert views["prod"].policy.gates.approval

"""Each environment's monitoring table and the live-data gate keys, from modelrail.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrail.config import init_project, load_settings
from modelrail.errors import ConfigError
from modelrail.policy import PromotionPolicy
from modelrail.policy_document import canonical, parse_document


def _policy(tmp_path: Path, toml: str) -> PromotionPolicy:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text(toml, encoding="utf-8")
    return load_settings(cwd=tmp_path, environ={}, create=False).policy


def test_monitoring_settings_and_live_gates_are_read_per_environment(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        """
[environments.prod]
min_live_requests = 500
max_live_drift = 0.25
live_beats_incumbent = true

[environments.prod.monitoring]
log_predictions = 0.2
exclude_columns = ["email", "name"]
retention_days = 7
drift_alert = 0.3
min_live = { accuracy = 0.88 }
""",
    )
    prod = policy.environments["prod"]
    assert prod.monitoring.log_predictions == 0.2
    assert prod.monitoring.exclude_columns == ("email", "name")
    assert prod.monitoring.retention_days == 7
    assert (prod.monitoring.drift_watch, prod.monitoring.drift_alert) == (0.1, 0.3)
    assert dict(prod.monitoring.min_live) == {"accuracy": 0.88}
    assert (prod.gates.min_live_requests, prod.gates.max_live_drift) == (500, 0.25)
    assert prod.gates.live_beats_incumbent
    staging = policy.environments["staging"]
    assert staging.monitoring.log_predictions == 0 and staging.gates.min_live_requests == 0


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("log_predictions = 1.5", 4, "log_predictions must be a share between 0 and 1"),
        ("log_predictions = true", 4, "log_predictions must be a share between 0 and 1"),
        ('exclude_columns = "email"', 4, "exclude_columns must be a list of column names"),
        ("retention_days = -1", 4, "retention_days must be a finite number >= 0"),
        ("min_live = { accuracy = 'high' }", 4, "min_live must be a table of metric name"),
        ("drift_watch = 0.5", 4, "drift_watch (0.5) must not be above drift_alert (0.2)"),
        ("sample = 0.1", 4, "unknown key 'sample' in [environments.prod.monitoring]"),
    ],
)
def test_a_wrong_monitoring_key_or_value_is_reported_with_its_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    toml = f"\n[environments]\n[environments.prod.monitoring]\n{body}\n"
    with pytest.raises(ConfigError) as caught:
        _policy(tmp_path, toml)
    assert f"modelrail.toml:{line}:" in str(caught.value)
    assert message in str(caught.value)


def test_a_wrong_live_gate_value_is_reported_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"modelrail.toml:3: .*max_live_drift must be a number"):
        _policy(tmp_path, "[environments.prod]\n\nmax_live_drift = -0.1\n")


def test_the_shared_policy_carries_monitoring_and_reads_back_the_same(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        """
[environments.prod]
min_live_requests = 100
[environments.prod.monitoring]
exclude_columns = ["email"]
max_live = { mae = 2.5 }
""",
    )
    text = canonical(policy)
    assert (
        '[environments.prod.monitoring]\nlog_predictions = 0.0\nexclude_columns = ["email"]' in text
    )
    assert "max_live_drift = inf" in text  # no limit unless one is set
    again = parse_document(text, "shared")
    assert canonical(again) == text
    assert again.environments["prod"].monitoring == policy.environments["prod"].monitoring

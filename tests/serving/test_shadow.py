"""Shadow traffic: live answers come from staging's version; dev's version scores the same
requests off the request path, and the report shows how often they agreed."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.serving.test_hot_swap import (  # noqa: F401 (project is a fixture)
    MODELRAIL,
    call,
    free_port,
    project,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


def test_shadow_scores_every_request_and_reports_agreement(
    project: tuple[Path, pd.DataFrame],  # noqa: F811 (the fixture imported above)
) -> None:
    root, X = project  # staging holds version 1, dev holds version 3
    port = free_port()
    process = start_server(root, port, "--shadow", "dev")
    try:
        body = json.dumps({"inputs": X[:4].to_dict(orient="records")})
        for _ in range(30):
            status, answer = call(port, "POST", "/v1/models/swapper/predict", body)
            assert status == 200 and answer["version"] == 1  # live answers never come from dev
        deadline = time.monotonic() + 10
        metrics = ""
        while time.monotonic() < deadline and "modelrail_shadow_requests_total{" not in metrics:
            time.sleep(0.2)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/metrics")
            metrics = connection.getresponse().read().decode()
            connection.close()
        shadow_lines = [
            line for line in metrics.splitlines() if line.startswith("modelrail_shadow_rows_total{")
        ]
        assert shadow_lines and 'shadow_version="3"' in shadow_lines[0]
    finally:
        stop_server(process)  # a clean stop writes the last totals to the store
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    report = subprocess.run(
        [MODELRAIL, "shadow", "report", "swapper", "--json"],
        cwd=root, capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    (totals,) = json.loads(report.stdout)
    assert (totals["live_environment"], totals["live_version"]) == ("staging", 1)
    assert (totals["shadow_environment"], totals["shadow_version"]) == ("dev", 3)
    assert totals["requests"] == 30 and totals["rows"] == 120
    assert 0 <= totals["agreeing_rows"] <= 120
    assert totals["agreement"] == pytest.approx(totals["agreeing_rows"] / 120)

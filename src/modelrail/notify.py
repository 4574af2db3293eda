"""Telling CI/CD about every change of what an environment holds, and about monitoring
alerts (``monitoring.alerts`` builds those payloads).

The receiver (a command getting JSON on stdin and/or a URL getting it POSTed)
runs in a detached process: a slow or failing receiver never blocks or undoes
a promotion. Failures go to ``.modelrail/notifications.log``.

Run as ``python -m modelrail.notify LOGFILE [--command CMD] [--url URL]`` with the
JSON on stdin; that is what ``notify_change`` starts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from modelrail.entities import EnvironmentEvent, ModelVersion
from modelrail.policy import PromotionPolicy

RECEIVER_TIMEOUT_S = 30
log = logging.getLogger("modelrail")


def change_payload(event: EnvironmentEvent, version: ModelVersion) -> dict[str, Any]:
    return {
        "type": "environment.changed",
        "id": event.id,
        "action": event.action,
        "model": event.model,
        "environment": event.environment,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "reference": f"{event.model}@{event.environment}",
        "actor": event.actor,
        "reason": event.reason,
        "forced": event.forced,
        "gates": [g.to_json() for g in event.gates],
        "at": dt.datetime.fromtimestamp(event.created_at, dt.UTC).isoformat(),
        "artifact_sha256": version.artifact_sha256,
        "run_id": version.run_id,
    }


def notify_change(
    policy: PromotionPolicy, project_dir: Path, event: EnvironmentEvent, version: ModelVersion
) -> None:
    send_notification(policy, project_dir, change_payload(event, version))


def send_notification(policy: PromotionPolicy, project_dir: Path, payload: dict[str, Any]) -> None:
    """Hand ``payload`` (JSON with an ``id``) to the policy's receivers in a detached
    process; nothing when the policy names none. Monitoring alerts go out this way too."""
    if not policy.notify_command and not policy.notify_url:
        return
    logfile = project_dir / "notifications.log"
    args = [sys.executable, "-m", "modelrail.notify", str(logfile)]
    if policy.notify_command:
        args += ["--command", policy.notify_command]
    if policy.notify_url:
        args += ["--url", policy.notify_url]
    try:
        project_dir.mkdir(parents=True, exist_ok=True)
        child = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=project_dir.parent,
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(payload).encode())
        child.stdin.close()
        # Reap the child when it ends; the thread dies with a short-lived CLI process,
        # the child (its own session) lives on and finishes the delivery.
        threading.Thread(target=child.wait, name="modelrail-notify", daemon=True).start()
    except OSError as exc:
        log.warning("modelrail: could not start the notification %s: %s", payload.get("id"), exc)


def _deliver(payload: bytes, command: str | None, url: str | None) -> list[str]:
    failures = []
    if command:
        try:
            done = subprocess.run(
                shlex.split(command), input=payload, capture_output=True, timeout=RECEIVER_TIMEOUT_S
            )
            if done.returncode != 0:
                stderr = done.stderr.decode(errors="replace").strip()[-500:]
                failures.append(f"command {command!r} exited {done.returncode}: {stderr}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            failures.append(f"command {command!r} failed: {exc}")
    if url:
        request = urllib.request.Request(
            url, data=payload, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=RECEIVER_TIMEOUT_S) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"POST {url} failed: {exc}")
    return failures


def _main(argv: list[str]) -> int:
    logfile = Path(argv[0])
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    payload = sys.stdin.buffer.read()
    event_id = json.loads(payload).get("id")
    failures = _deliver(payload, options.get("--command"), options.get("--url"))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with logfile.open("a", encoding="utf-8") as out:
        for failure in failures:
            out.write(f"{stamp} event {event_id}: FAILED {failure}\n")
        if not failures:
            out.write(f"{stamp} event {event_id}: delivered\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

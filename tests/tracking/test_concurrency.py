"""Many writers at once never mix or lose data: real processes and threads on one store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd

from modelrail.client import Client
from modelrail.tracking.run import PROFILES
from modelrail.tracking.snapshot import ARTIFACT_PREFIX

_WORKER = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    from modelrail.client import Client
    from modelrail.config import load_settings

    worker, store, artifacts, project = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    from pathlib import Path
    settings = load_settings(cwd=Path(project), environ={}, create=False)
    client = Client(store_url=store, artifact_root=artifacts, settings=settings)
    ids = []
    for r in range(3):
        with client.start_run(f"exp{worker % 2}", architecture=f"arch{r}") as run:
            run.log_params({"worker": worker, "run": r})
            run.log_dataset(pd.DataFrame({"x": [worker, r, 1]}), name="shared", role="train")
            for step in range(60):
                run.log_metric("value", worker * 1000 + r * 100 + step, step=step)
            run.log_metrics({"final": worker + r / 10})
            run.log_text(f"{worker}-{r}", "who.txt")
            ids.append(run.id)
    print(json.dumps(ids))
    """
)


def test_eight_processes_log_at_once_without_mixing_or_losing_values(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                str(worker),
                store_url,
                str(client.artifacts.root),
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,  # outside any git work tree, so the code component is the same
        )
        for worker in range(8)
    ]
    run_ids: dict[int, list[str]] = {}
    for worker, process in enumerate(workers):
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        run_ids[worker] = json.loads(out.strip().splitlines()[-1])

    labels: dict[tuple[int, int], str] = {}
    for worker, ids in run_ids.items():
        for r, run_id in enumerate(ids):
            run = client.get_run(run_id)
            assert run.status == "finished"
            assert run.params == {"worker": worker, "run": r}
            assert run.experiment == f"exp{worker % 2}"
            history = client.runs.metric_history(run_id, "value")
            assert [p.value for p in history] == [worker * 1000 + r * 100 + s for s in range(60)]
            assert run.metrics["final"] == worker + r / 10
            own = [a for a in run.artifacts if not a.path.startswith((ARTIFACT_PREFIX, PROFILES))]
            (artifact,) = own
            assert client.artifacts.read_verified(artifact.sha256) == f"{worker}-{r}".encode()
            labels[(worker, r)] = run.components["data:train"].label
    # 24 distinct datasets in one lineage got 24 distinct labels, none lost to a race.
    assert len(set(labels.values())) == 24
    assert sorted(labels.values(), key=lambda v: int(v.split(".")[1]))[-1] == "1.23"
    # Architectures arch0..arch2 are three code shapes per experiment, labelled once each.
    code_labels = {
        client.get_run(i).components["code"].label for ids in run_ids.values() for i in ids
    }
    assert code_labels == {"1.0", "2.0", "3.0"}


def test_threads_sharing_one_client_keep_their_runs_apart(client: Client) -> None:
    errors: list[BaseException] = []
    ids: dict[int, str] = {}

    def work(n: int) -> None:
        try:
            with client.start_run("threads") as run:
                ids[n] = run.id
                run.log_params({"n": n})
                run.log_dataset(pd.DataFrame({"n": [n] * 5}), name="t", role="train")
                for step in range(40):
                    run.log_metric("m", n * 100 + step)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for n, run_id in ids.items():
        assert client.get_run(run_id).params == {"n": n}
        values = [p.value for p in client.runs.metric_history(run_id, "m")]
        assert values == [n * 100 + s for s in range(40)]

"""The scheduler, driven by a fake clock: due jobs start once (also across schedulers and
processes), missed fire times follow the catch-up policy, and each arriving file is
scored exactly once."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import create_engine, text

from modelrail.batch.scheduler import Scheduler
from modelrail.batch.schedules import create_schedule, get_schedule, schedule_statuses
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.entities import BatchRun
from modelrail.errors import BatchInputError
from modelrail.store.batch_runs_repo import BatchRunRepository
from modelrail.store.batch_schedules_repo import BatchScheduleRepository

T0 = dt.datetime(2030, 1, 7, 0, 30, tzinfo=dt.UTC).timestamp()  # far after any file's mtime
HOUR = 3600.0
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """The time the schedulers see; tests move it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Call:
    job: str | None
    trigger: str
    inputs: tuple[str, ...]


class FakeJob:
    """Stands in for ``run_batch``: records each call and the run record it would leave."""

    def __init__(
        self,
        *,
        fail: dict[str, Exception] | None = None,
        block: threading.Event | None = None,
        then: threading.Event | None = None,
        record: bool = True,
    ) -> None:
        self.calls: list[Call] = []
        self.record = record
        self.fail = fail or {}
        self.block = block
        self.then = then
        self.started = threading.Event()
        self._lock = threading.Lock()

    def __call__(
        self, client: Client, spec: JobSpec, *, job: str | None = None, trigger: str = "manual"
    ) -> BatchRun:
        with self._lock:
            self.calls.append(Call(job, trigger, spec.inputs))
        if not self.record:  # quick: no run record
            return batch_run(job, trigger, status="succeeded", heartbeat_at=time.time())
        repo = BatchRunRepository(client.db)
        run = batch_run(job, trigger, status="running", heartbeat_at=time.time())
        repo.create(run)
        self.started.set()
        if self.block is not None:
            assert self.block.wait(10)
        if self.then is not None:
            self.then.set()
        failure = self.fail.get(spec.inputs[0] if trigger == "file" else str(job))
        if failure is not None:
            repo.update(run.id, status="failed", finished_at=time.time(), error=str(failure))
            raise failure
        repo.update(run.id, status="succeeded", finished_at=time.time())
        return repo.get(run.id)

    def count(self, **where: object) -> int:
        return sum(all(getattr(c, k) == v for k, v in where.items()) for c in self.calls)


def batch_run(job: str | None, trigger: str, *, status: str, heartbeat_at: float) -> BatchRun:
    now = time.time()
    return BatchRun(
        id=uuid.uuid4().hex,
        job=job,
        trigger=trigger,
        model="pets",
        version=1,
        reference="pets@prod",
        engine="local",
        spec="{}",
        status=status,
        input_fingerprint="",
        input_description="",
        output="scores",
        rows_read=0,
        rows_written=0,
        rows_rejected=0,
        checkpoint=None,
        user="tester",
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=now,
        heartbeat_at=heartbeat_at,
        finished_at=None,
        error=None,
    )


def spec(inputs: tuple[str, ...] = ("/data/*.parquet",)) -> JobSpec:
    return JobSpec(reference="pets@prod", output="scores", id_columns=("id",), inputs=inputs)


@pytest.fixture
def other(client: Client, store_url: str) -> Iterator[Client]:
    """A second client on the same store, as a second scheduler process would have."""
    with Client(store_url=store_url, settings=client.settings, user="other") as made:
        yield made


def scheduler(client: Client, job: FakeJob, clock: Clock, owner: str) -> Scheduler:
    return Scheduler(client, run_job=job, clock=clock, owner=owner)


# -- cron ------------------------------------------------------------------------------------


def test_due_job_runs_once_at_its_fire_time_and_then_waits_for_the_next(client: Client) -> None:
    made = create_schedule(client, "nightly", spec(), cron="0 2 * * *", now=T0)
    assert made.next_run_at is not None
    job, clock = FakeJob(), Clock()
    runner = scheduler(client, job, clock, "a")
    assert runner.tick(made.next_run_at - 1) == []
    [outcome] = runner.tick(made.next_run_at)
    assert outcome.status == "succeeded" and outcome.fire_time == made.next_run_at
    assert job.calls == [Call("nightly", "schedule", made.spec.inputs)]
    assert runner.tick(made.next_run_at + 60) == []
    after = get_schedule(client, "nightly")
    assert after.next_run_at == made.next_run_at + 24 * HOUR
    assert after.last_run_id == outcome.run_id and after.lease_owner is None
    [status] = schedule_statuses(client)
    assert status.last_run is not None and status.last_run.status == "succeeded"


def test_two_schedulers_never_start_a_running_job_again(client: Client, other: Client) -> None:
    made = create_schedule(client, "minutely", spec(), cron="* * * * *", now=T0)
    due = made.next_run_at or 0
    release = threading.Event()
    job, clock = FakeJob(block=release), Clock(due)
    first, second = scheduler(client, job, clock, "a"), scheduler(other, job, clock, "b")
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.extend(first.tick(due)))
    worker.start()
    try:
        assert job.started.wait(10)
        clock.now = due + 100  # the next fire time passes while the first run goes on
        assert second.tick() == []  # the lease is held
    finally:
        release.set()
        worker.join(10)
    assert len(results) == 1 and len(job.calls) == 1
    assert [o.fire_time for o in second.tick()] == [due + 60]  # and now it may run


def test_schedulers_ticking_at_the_same_moment_start_a_due_job_once(
    client: Client, other: Client
) -> None:
    made = create_schedule(client, "nightly", spec(), cron="0 2 * * *", now=T0)
    job, clock = FakeJob(), Clock(made.next_run_at or 0)
    runners = [scheduler(c, job, clock, f"s{n}") for n, c in enumerate((client, other, client))]
    barrier = threading.Barrier(len(runners))

    def tick(runner: Scheduler) -> None:
        barrier.wait(10)
        runner.tick()

    threads = [threading.Thread(target=tick, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(job.calls) == 1


def test_a_running_manual_run_of_the_job_holds_the_schedule_back(client: Client) -> None:
    made = create_schedule(client, "nightly", spec(), cron="0 2 * * *", now=T0)
    due = made.next_run_at or 0
    repo = BatchRunRepository(client.db)
    manual = batch_run("nightly", "manual", status="running", heartbeat_at=due - 5)
    repo.create(manual)
    job = FakeJob()
    runner = scheduler(client, job, Clock(), "a")
    assert runner.tick(due) == []
    repo.update(manual.id, heartbeat_at=due - 600)  # its process died: the record is stale
    assert len(runner.tick(due + 1)) == 1 and len(job.calls) == 1


def test_a_crashed_schedulers_lease_expires_and_another_carries_on(client: Client) -> None:
    made = create_schedule(client, "minutely", spec(), cron="* * * * *", now=T0)
    due = made.next_run_at or 0
    repo = BatchScheduleRepository(client.db)
    assert repo.claim_fire(
        "minutely",
        expected_next=due,
        new_next=due + 60,
        owner="dead",
        now=due,
        lease_until=due + 120,
    )
    job = FakeJob()
    runner = scheduler(client, job, Clock(), "a")
    assert runner.tick(due + 90) == []  # the dead scheduler's lease still holds
    [outcome] = runner.tick(due + 121)
    assert outcome.fire_time == due + 120 and len(job.calls) == 1


def test_failing_jobs_are_recorded_and_never_stop_the_others(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("a-fails", "b-crashes", "c-works"):
        create_schedule(client, name, spec(), cron="0 2 * * *", now=T0)
    due = get_schedule(client, "a-fails").next_run_at or 0
    fail = {"a-fails": BatchInputError("no input file matches"), "b-crashes": RuntimeError("bug")}
    job = FakeJob(fail=fail)
    runner = scheduler(client, job, Clock(), "a")
    with caplog.at_level(logging.INFO, logger="modelrail"):
        outcomes = runner.tick(due)
    assert [(o.schedule, o.status) for o in outcomes] == [
        ("a-fails", "failed"),
        ("b-crashes", "failed"),
        ("c-works", "succeeded"),
    ]
    assert outcomes[0].error == "no input file matches"
    assert outcomes[1].error == "RuntimeError: bug"
    assert all(o.run_id for o in outcomes)
    assert runner.tick(due + 60) == []  # not retried before the next fire time
    statuses = {s.schedule.name: s for s in schedule_statuses(client)}
    last = statuses["a-fails"].last_run
    assert last is not None and last.status == "failed" and last.id == outcomes[0].run_id
    messages = [r.getMessage() for r in caplog.records]
    assert any("a-fails: started" in m for m in messages)
    assert any("a-fails: failed" in m and "no input file matches" in m for m in messages)
    assert any("c-works: succeeded" in m for m in messages)


# -- catch-up after downtime ------------------------------------------------------------------


def downtime(client: Client, catch_up: str, *, hours: float, cron: str = "0 * * * *") -> FakeJob:
    """A schedule made at T0, then no scheduler until ``hours`` later; one tick."""
    made = create_schedule(client, "job", spec(), cron=cron, catch_up=catch_up, now=T0)
    assert made.next_run_at == T0 + HOUR / 2 or cron != "0 * * * *"
    job = FakeJob()
    outcomes = scheduler(client, job, Clock(), "a").tick(T0 + hours * HOUR)
    assert len(outcomes) == len(job.calls)
    return job


def test_catch_up_once_runs_a_single_time_after_downtime(client: Client) -> None:
    job = downtime(client, "once", hours=5.7)  # 01:00 ... 06:00 passed; now 06:12
    assert len(job.calls) == 1
    assert get_schedule(client, "job").next_run_at == T0 + 6.5 * HOUR  # 07:00


def test_catch_up_all_runs_every_missed_fire_time_oldest_first(client: Client) -> None:
    made = create_schedule(client, "job", spec(), cron="0 * * * *", catch_up="all", now=T0)
    runner = scheduler(client, FakeJob(), Clock(), "a")
    outcomes = runner.tick(T0 + 5.7 * HOUR)
    first = made.next_run_at or 0
    assert [o.fire_time for o in outcomes] == [first + n * HOUR for n in range(6)]
    assert get_schedule(client, "job").next_run_at == first + 6 * HOUR


def test_catch_up_all_is_capped_with_a_warning(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    create_schedule(client, "job", spec(), cron="* * * * *", catch_up="all", now=T0)
    now = T0 + 1000 * 60
    with caplog.at_level(logging.INFO, logger="modelrail"):
        outcomes = scheduler(client, FakeJob(record=False), Clock(), "a").tick(now)
    assert len(outcomes) == 100
    assert [o.fire_time for o in outcomes] == [now - 60 * n for n in range(99, -1, -1)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("at most 100 runs" in m and "skipping the 900 before" in m for m in warnings)


def test_catch_up_skip_runs_nothing_missed(client: Client) -> None:
    job = downtime(client, "skip", hours=5.7)
    assert job.calls == []
    assert get_schedule(client, "job").next_run_at == T0 + 6.5 * HOUR


def test_catch_up_skip_still_runs_a_fire_time_that_just_passed(client: Client) -> None:
    job = downtime(client, "skip", hours=5.55)  # 06:00 passed 3 minutes ago
    assert len(job.calls) == 1


# -- file arrivals ------------------------------------------------------------------------------


def write(path: Path, rows: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": range(rows), "age": [0.5] * rows}).to_parquet(path)
    return path


def test_each_arriving_file_is_scored_exactly_once_by_two_schedulers(
    client: Client, other: Client, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    create_schedule(client, "arrivals", spec(), file_pattern=f"{incoming}/*.parquet", now=T0)
    job, clock = FakeJob(), Clock()
    runners = [scheduler(client, job, clock, "a"), scheduler(other, job, clock, "b")]
    files = [write(incoming / f"part-{n}.parquet") for n in range(3)]
    write(incoming / "_SUCCESS.parquet")  # markers and hidden files are not inputs
    write(incoming / ".partial.parquet")
    for _ in range(3):
        threads = [threading.Thread(target=r.tick) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        clock.now += 30
    assert sorted(c.inputs for c in job.calls) == [(str(f),) for f in files]
    assert {c.trigger for c in job.calls} == {"file"} and {c.job for c in job.calls} == {"arrivals"}
    records = BatchScheduleRepository(client.db).files("arrivals")
    assert sorted(r.status for r in records) == ["done"] * 3 and all(r.run_id for r in records)
    [status] = schedule_statuses(client)
    assert status.files == {"done": 3} and status.last_run is not None


def test_leases_are_renewed_while_a_long_job_runs(
    client: Client, other: Client, tmp_path: Path
) -> None:
    create_schedule(client, "arrivals", spec(), file_pattern=f"{tmp_path}/in/*.parquet", now=T0)
    write(tmp_path / "in" / "slow.parquet")
    release = threading.Event()
    job, clock = FakeJob(block=release), Clock()
    first = Scheduler(client, run_job=job, clock=clock, owner="a", lease_seconds=0.4)
    second = Scheduler(other, run_job=job, clock=clock, owner="b", lease_seconds=0.4)
    worker = threading.Thread(target=first.tick)
    worker.start()
    try:
        assert job.started.wait(10)
        clock.now += 10  # long after the lease taken at the start would have expired
        repo = BatchScheduleRepository(client.db)
        deadline = time.monotonic() + 10
        while repo.files("arrivals")[0].lease_until < clock.now:
            assert time.monotonic() < deadline, "the file's lease was not renewed"
            time.sleep(0.02)
        schedule = get_schedule(client, "arrivals")
        assert schedule.lease_owner == "a" and schedule.running(clock.now)
        assert second.tick() == []
    finally:
        release.set()
        worker.join(10)
    assert len(job.calls) == 1
    assert get_schedule(client, "arrivals").lease_owner is None  # released at the end


def test_a_file_changed_after_scoring_is_a_new_arrival(client: Client, tmp_path: Path) -> None:
    create_schedule(client, "arrivals", spec(), file_pattern=f"{tmp_path}/in/*.parquet", now=T0)
    job = FakeJob()
    runner = scheduler(client, job, Clock(), "a")
    first, second = write(tmp_path / "in" / "a.parquet"), write(tmp_path / "in" / "b.parquet")
    assert len(runner.tick()) == 2
    assert runner.tick() == []
    write(first, rows=5)  # rewritten: new size and mtime
    [again] = runner.tick()
    assert again.path == str(first) and runner.tick() == []
    assert job.count(inputs=(str(first),)) == 2 and job.count(inputs=(str(second),)) == 1


def test_a_file_still_being_written_waits_until_it_settles(client: Client, tmp_path: Path) -> None:
    create_schedule(client, "arrivals", spec(), file_pattern=f"{tmp_path}/in/*.csv", now=T0)
    job, clock = FakeJob(), Clock()
    runner = scheduler(client, job, clock, "a")
    path = tmp_path / "in" / "big.csv"
    path.parent.mkdir()
    path.write_text("id,age\n1,0.5\n")
    os.utime(path, ns=(int(clock.now * 1e9),) * 2)  # written just now
    assert runner.tick() == []  # first sight
    with path.open("a") as handle:
        handle.write("2,0.7\n")
    clock.now += 30
    os.utime(path, ns=(int(clock.now * 1e9),) * 2)
    assert runner.tick() == []  # it grew since the last look
    clock.now += 30
    assert [o.path for o in runner.tick()] == [str(path)]  # unchanged for one poll
    assert len(job.calls) == 1


def test_a_failed_file_is_not_retried_until_it_changes(client: Client, tmp_path: Path) -> None:
    create_schedule(client, "arrivals", spec(), file_pattern=f"{tmp_path}/*.parquet", now=T0)
    path = write(tmp_path / "bad.parquet")
    job = FakeJob(fail={str(path): BatchInputError("column 'age' is missing")})
    runner = scheduler(client, job, Clock(), "a")
    [outcome] = runner.tick()
    assert outcome.status == "failed" and outcome.error == "column 'age' is missing"
    assert runner.tick() == []
    [record] = BatchScheduleRepository(client.db).files("arrivals")
    assert record.status == "failed" and record.run_id == outcome.run_id
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)  # touched: try again
    assert len(runner.tick()) == 1 and len(job.calls) == 2


# -- real processes -----------------------------------------------------------------------------

_SCRIPT = """
import json, os, sys, time, uuid
from pathlib import Path

from modelrail.batch.scheduler import Scheduler
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.entities import BatchRun

store_url, project, now, log_path, go_path, sleep = sys.argv[1:]


def job(client, spec, *, job=None, trigger="manual"):
    with open(log_path, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "job": job, "inputs": spec.inputs}) + "\\n")
    time.sleep(float(sleep))
    values = dict.fromkeys(BatchRun.__dataclass_fields__)
    return BatchRun(**{**values, "id": uuid.uuid4().hex})


settings = load_settings(cwd=Path(project), environ={}, create=False)
with Client(store_url=store_url, settings=settings, user="proc") as client:
    scheduler = Scheduler(client, run_job=job, clock=lambda: float(now))
    print("ready", flush=True)
    while not os.path.exists(go_path):
        time.sleep(0.005)
    done = [scheduler.tick() for _ in range(3)]
    print(json.dumps(sum(len(outcomes) for outcomes in done)), flush=True)
"""


def start_schedulers(
    count: int, store_url: str, project: Path, now: float, sleep: float
) -> tuple[list[subprocess.Popen[str]], Path, Path]:
    script = project / "scheduler_process.py"
    script.write_text(_SCRIPT)
    log_path, go_path = project / "calls.jsonl", project / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    command = [sys.executable, str(script), store_url, str(project), str(now)]
    command += [str(log_path), str(go_path), str(sleep)]
    processes = [
        subprocess.Popen(
            command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.stderr
    return processes, log_path, go_path


def test_two_scheduler_processes_start_each_due_job_and_file_once(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    made = create_schedule(client, "nightly", spec(), cron="0 2 * * *", now=T0)
    incoming = tmp_path / "incoming"
    create_schedule(client, "arrivals", spec(), file_pattern=f"{incoming}/*.parquet", now=T0)
    files = [write(incoming / f"part-{n}.parquet") for n in range(3)]
    now = made.next_run_at or 0
    processes, log_path, go_path = start_schedulers(2, store_url, tmp_path, now, 0.2)
    go_path.touch()
    ran = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        ran.append(json.loads(out.strip().splitlines()[-1]))
    calls = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert sum(ran) == len(calls) == 4
    assert sorted(tuple(c["inputs"]) for c in calls if c["job"] == "arrivals") == [
        (str(f),) for f in files
    ]
    assert [c["job"] for c in calls].count("nightly") == 1


def test_a_killed_schedulers_file_is_retried_after_its_lease_expires(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    create_schedule(client, "arrivals", spec(), file_pattern=f"{tmp_path}/in/*.parquet", now=T0)
    path = write(tmp_path / "in" / "a.parquet")
    [process], log_path, go_path = start_schedulers(1, store_url, tmp_path, T0, 60)
    go_path.touch()
    deadline = time.monotonic() + 30
    while not (log_path.exists() and log_path.read_text()):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # dies holding the lease and the file's claim
    process.communicate(timeout=10)
    job = FakeJob()
    runner = scheduler(client, job, Clock(), "b")
    assert runner.tick(T0 + 60) == []
    [outcome] = runner.tick(T0 + 121)
    assert outcome.path == str(path) and outcome.status == "succeeded"
    [record] = BatchScheduleRepository(client.db).files("arrivals")
    assert record.status == "done" and record.claimed_by == "b"


# -- running as a service ---------------------------------------------------------------------


def test_run_forever_runs_due_jobs_and_stops_when_asked(client: Client) -> None:
    create_schedule(client, "overdue", spec(), cron="* * * * *", now=time.time() - 3600)
    stop = threading.Event()
    job = FakeJob(then=stop)  # the job asks the loop to stop once it has run
    runner = Scheduler(client, run_job=job)
    worker = threading.Thread(target=runner.run_forever, args=(stop, 0.05))
    worker.start()
    worker.join(20)
    assert not worker.is_alive() and len(job.calls) == 1


# -- end to end, with the real runner -----------------------------------------------------------


def test_scheduled_job_and_arriving_file_score_into_sqlite(client: Client, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["age", "weight", "height"])
    model = LogisticRegression().fit(X, (X["age"] > 0).astype(int))
    client.register_model(model, "pets", input_example=X[:3])
    data = X.assign(id=range(40))
    data[:25].to_parquet(tmp_path / "daily.parquet")
    output = JobSpec(
        reference="pets:1",
        output="sqlite:///scores.db",
        table="scores",
        id_columns=("id",),
        inputs=(str(tmp_path / "daily.parquet"),),
    )
    made = create_schedule(client, "nightly", output, cron="0 2 * * *", now=T0)
    create_schedule(client, "arrivals", output, file_pattern=f"{tmp_path}/in/*.parquet", now=T0)
    (tmp_path / "in").mkdir()
    data[25:].to_parquet(tmp_path / "in" / "late.parquet")

    outcomes = Scheduler(client, clock=Clock()).tick(made.next_run_at)
    assert sorted((o.schedule, o.status) for o in outcomes) == [
        ("arrivals", "succeeded"),
        ("nightly", "succeeded"),
    ], [o.error for o in outcomes]
    engine = create_engine(f"sqlite:///{tmp_path / 'scores.db'}")
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM scores ORDER BY id")).scalars().all()
    engine.dispose()
    assert ids == list(range(40))
    runs = {r.job: r for r in BatchRunRepository(client.db).recent()}
    assert runs["nightly"].trigger == "schedule" and runs["nightly"].rows_written == 25
    assert runs["arrivals"].trigger == "file" and runs["arrivals"].rows_written == 15
    assert all(r.status == "succeeded" and r.version == 1 for r in runs.values())
    assert get_schedule(client, "nightly").last_run_id == runs["nightly"].id

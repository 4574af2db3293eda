"""Schedules: cron timing in a time zone, the catch-up policy, and storing schedules."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from modelrail.batch.schedules import (
    MAX_CATCH_UP_RUNS,
    CronTiming,
    Schedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    plan_cron,
    schedule_statuses,
)
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.errors import (
    BatchInputError,
    BatchRunStateError,
    InvalidReferenceError,
    ScheduleNotFoundError,
)

UTC = dt.UTC
T0 = dt.datetime(2030, 1, 7, 0, 30, tzinfo=UTC).timestamp()  # a Monday, 00:30 UTC
HOUR = 3600.0


def at(*parts: int, zone: str = "UTC") -> float:
    return dt.datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[misc]


def job(inputs: tuple[str, ...] = ("data/*.parquet",)) -> JobSpec:
    return JobSpec(reference="pets@prod", output="scores", id_columns=("id",), inputs=inputs)


def hourly(catch_up: str, next_run_at: float) -> tuple[Schedule, CronTiming]:
    schedule = Schedule(
        name="hourly",
        kind="cron",
        spec=job(),
        cron="0 * * * *",
        timezone="UTC",
        file_pattern=None,
        catch_up=catch_up,
        enabled=True,
        next_run_at=next_run_at,
        last_run_id=None,
        created_by="tester",
        created_at=T0,
    )
    return schedule, CronTiming("0 * * * *", "UTC")


# -- cron timing -------------------------------------------------------------------------


def test_cron_fires_at_local_time_across_daylight_saving_changes() -> None:
    timing = CronTiming("0 2 * * *", "Europe/Berlin")
    winter = timing.next_after(at(2030, 1, 7, 12))
    summer = timing.next_after(at(2030, 7, 7, 12))
    assert winter == at(2030, 1, 8, 1)  # 02:00 CET is 01:00 UTC
    assert summer == at(2030, 7, 8, 0)  # 02:00 CEST is 00:00 UTC
    assert timing.describe(winter) == "2030-01-08 02:00 CET"


def test_next_after_is_strictly_later_and_first_at_or_after_includes_the_moment() -> None:
    timing = CronTiming("0 * * * *")
    assert timing.next_after(at(2030, 1, 7, 5)) == at(2030, 1, 7, 6)
    assert timing.first_at_or_after(at(2030, 1, 7, 5)) == at(2030, 1, 7, 5)


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [("0", "Sunday"), ("7", "Sunday"), ("1", "Monday"), ("6", "Saturday"), ("sat", "Saturday")],
)
def test_weekday_numbers_follow_crontab_with_sunday_as_zero(weekday: str, expected: str) -> None:
    timing = CronTiming(f"0 9 * * {weekday}")
    fire = timing.next_after(at(2030, 1, 1))  # a Tuesday
    assert fire is not None
    assert dt.datetime.fromtimestamp(fire, UTC).strftime("%A") == expected


def test_weekday_ranges_and_steps_follow_crontab() -> None:
    days = CronTiming("0 9 * * 1-5").fires(at(2030, 1, 6), at(2030, 1, 13), limit=10)
    names = [dt.datetime.fromtimestamp(d, UTC).strftime("%a") for d in days]
    assert names == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    every_other = CronTiming("0 9 * * */2").fires(at(2030, 1, 6), at(2030, 1, 13), limit=10)
    names = [dt.datetime.fromtimestamp(d, UTC).strftime("%a") for d in every_other]
    assert names == ["Sun", "Tue", "Thu", "Sat"]


def test_aliases_are_accepted() -> None:
    assert CronTiming("@daily").next_after(at(2030, 1, 7, 5)) == at(2030, 1, 8)
    assert CronTiming("@hourly").next_after(at(2030, 1, 7, 5)) == at(2030, 1, 7, 6)


@pytest.mark.parametrize("expression", ["61 * * * *", "* * * *", "0 2 * * 8", "every day", ""])
def test_bad_cron_expression_is_an_input_error_naming_it(expression: str) -> None:
    with pytest.raises(BatchInputError, match=re.escape(f"invalid cron expression {expression!r}")):
        CronTiming(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "europe berlin"])
def test_unknown_time_zone_is_an_input_error_naming_it(zone: str) -> None:
    with pytest.raises(BatchInputError, match="unknown time zone"):
        CronTiming("0 2 * * *", zone)


def test_latest_finds_the_most_recent_fire_times_without_walking_from_the_start() -> None:
    timing = CronTiming("* * * * *")
    latest = timing.latest(0.0, at(2030, 1, 7, 12), 3)
    assert latest == [at(2030, 1, 7, 11, 58), at(2030, 1, 7, 11, 59), at(2030, 1, 7, 12)]


# -- catch-up policy ---------------------------------------------------------------------


def test_a_fire_time_that_just_passed_runs_under_every_policy() -> None:
    for policy in ("once", "all", "skip"):
        schedule, timing = hourly(policy, at(2030, 1, 7, 5))
        step = plan_cron(schedule, timing, at(2030, 1, 7, 5, 0, 30))
        assert step is not None and step.run and step.fire_time == at(2030, 1, 7, 5)
        assert step.next_run_at == at(2030, 1, 7, 6) and step.note == ""


def test_nothing_is_planned_before_the_next_fire_time() -> None:
    schedule, timing = hourly("once", at(2030, 1, 7, 5))
    assert plan_cron(schedule, timing, at(2030, 1, 7, 4, 59)) is None


def test_once_runs_a_single_time_for_many_missed_fire_times() -> None:
    schedule, timing = hourly("once", at(2030, 1, 7, 1))
    step = plan_cron(schedule, timing, at(2030, 1, 7, 6, 10))
    assert step is not None and step.run and step.skipped == 5
    assert step.next_run_at == at(2030, 1, 7, 7)
    assert "6 fire time(s) passed" in step.note and "catch-up once" in step.note


def test_all_runs_the_oldest_missed_fire_time_first_and_moves_to_the_next() -> None:
    schedule, timing = hourly("all", at(2030, 1, 7, 1))
    step = plan_cron(schedule, timing, at(2030, 1, 7, 6, 10))
    assert step is not None and step.run
    assert step.fire_time == at(2030, 1, 7, 1) and step.next_run_at == at(2030, 1, 7, 2)


def test_all_skips_missed_fire_times_beyond_the_cap_and_says_so() -> None:
    schedule, timing = hourly("all", at(2030, 1, 7, 1))
    now = at(2030, 1, 7, 1) + 150 * HOUR
    step = plan_cron(schedule, timing, now)
    assert step is not None and not step.run
    assert step.next_run_at == now - (MAX_CATCH_UP_RUNS - 1) * HOUR
    assert step.skipped == 51 and "skipping the 51 before" in step.note  # 151 passed


def test_skip_drops_late_fire_times_and_runs_only_a_recent_one() -> None:
    schedule, timing = hourly("skip", at(2030, 1, 7, 1))
    late = plan_cron(schedule, timing, at(2030, 1, 7, 6, 10))
    assert late is not None and not late.run and late.skipped == 6
    assert late.next_run_at == at(2030, 1, 7, 7)
    recent = plan_cron(schedule, timing, at(2030, 1, 7, 6, 2))
    assert recent is not None and recent.run and recent.fire_time == at(2030, 1, 7, 6)
    assert recent.skipped == 5 and recent.next_run_at == at(2030, 1, 7, 7)


# -- storing schedules ----------------------------------------------------------------------


def test_create_cron_schedule_computes_the_next_run_in_its_time_zone(client: Client) -> None:
    made = create_schedule(
        client, "nightly", job(), cron="0 2 * * *", timezone="Europe/Berlin", now=T0
    )
    assert made.kind == "cron" and made.catch_up == "once" and made.enabled
    assert made.next_run_at == at(2030, 1, 7, 1)  # 02:00 in Berlin, 01:00 UTC
    assert made.created_by == "tester" and made.created_at == T0
    assert made.spec.inputs == (os.path.abspath("data/*.parquet"),)
    assert get_schedule(client, "nightly") == made


def test_time_zone_defaults_to_utc(client: Client) -> None:
    made = create_schedule(client, "nightly", job(), cron="0 2 * * *", now=T0)
    assert made.timezone == "UTC" and made.next_run_at == at(2030, 1, 7, 2)


def test_file_trigger_stores_an_absolute_pattern_as_the_job_input(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = create_schedule(client, "arrivals", job(), file_pattern="incoming/*.parquet", now=T0)
    pattern = str(tmp_path / "incoming" / "*.parquet")
    assert made.kind == "files" and made.file_pattern == pattern
    assert made.spec.inputs == (pattern,) and made.next_run_at is None and made.cron is None


def test_a_folder_as_file_pattern_means_every_file_in_it(client: Client, tmp_path: Path) -> None:
    made = create_schedule(client, "arrivals", job(), file_pattern=f"{tmp_path}/", now=T0)
    assert made.file_pattern == str(tmp_path / "*")


def test_list_and_delete_schedules(client: Client) -> None:
    create_schedule(client, "b-job", job(), cron="@hourly", now=T0)
    create_schedule(client, "a-job", job(), file_pattern="/in/*.csv", now=T0)
    assert [s.name for s in list_schedules(client)] == ["a-job", "b-job"]
    removed = delete_schedule(client, "a-job")
    assert removed.name == "a-job"
    assert [s.name for s in list_schedules(client)] == ["b-job"]
    with pytest.raises(ScheduleNotFoundError, match="no batch schedule named 'a-job'"):
        delete_schedule(client, "a-job")
    with pytest.raises(ScheduleNotFoundError):
        get_schedule(client, "missing")


def test_a_name_is_taken_until_replaced(client: Client) -> None:
    create_schedule(client, "nightly", job(), cron="0 2 * * *", now=T0)
    with pytest.raises(BatchRunStateError, match="exists already"):
        create_schedule(client, "nightly", job(), cron="0 3 * * *", now=T0)
    changed = create_schedule(
        client, "nightly", job(), cron="0 3 * * *", catch_up="all", replace_existing=True, now=T0
    )
    assert changed.cron == "0 3 * * *" and changed.catch_up == "all"
    assert changed.next_run_at == at(2030, 1, 7, 3)


def test_statuses_list_schedules_without_runs(client: Client) -> None:
    create_schedule(client, "nightly", job(), cron="0 2 * * *", now=T0)
    [status] = schedule_statuses(client, now=T0)
    assert status.schedule.name == "nightly" and status.last_run is None and not status.running


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"cron": "61 * * * *"}, BatchInputError, "invalid cron expression '61 \\* \\* \\* \\*'"),
        ({"cron": "0 2 * * *", "timezone": "Nowhere/City"}, BatchInputError, "Nowhere/City"),
        ({"cron": "0 2 30 2 *"}, BatchInputError, "never fires"),
        ({"cron": "0 2 * * *", "catch_up": "sometimes"}, BatchInputError, "'sometimes'"),
        ({}, BatchInputError, "either cron"),
        ({"cron": "@daily", "file_pattern": "x/*"}, BatchInputError, "either cron"),
        ({"file_pattern": "x/*", "catch_up": "skip"}, BatchInputError, "catch_up applies to cron"),
        ({"file_pattern": "x/*", "timezone": "UTC"}, BatchInputError, "timezone applies to cron"),
    ],
)
def test_invalid_schedules_are_refused_with_the_reason(
    client: Client, kwargs: dict[str, str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        create_schedule(client, "job", job(), now=T0, **kwargs)  # type: ignore[arg-type]
    assert list_schedules(client) == []


def test_bad_names_and_references_are_refused(client: Client) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid schedule name"):
        create_schedule(client, "no spaces", job(), cron="@daily", now=T0)
    bad = JobSpec(reference="pets:x", output="o", id_columns=("id",), inputs=("x",))
    with pytest.raises(InvalidReferenceError, match=r"in model reference 'pets:x'"):
        create_schedule(client, "job", bad, cron="@daily", now=T0)

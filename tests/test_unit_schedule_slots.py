"""Slot arithmetic of schedules: where a tick moves a schedule, and where an upsert or a manual run puts it."""

from __future__ import annotations

import pytest

from athena_server.control.schedule_slots import MINUTE_MS, Cadence, parse_cron
from athena_server.errors import AthenaError
from athena_server.timefmt import iso, parse_iso


def at(text: str) -> int:
    value = parse_iso(text)
    assert value is not None
    return value


@pytest.mark.parametrize(
    ("late_ms", "expected_slots_later"),
    [(0, 1), (1, 1), (5 * MINUTE_MS - 1, 1), (5 * MINUTE_MS, 2), (12 * MINUTE_MS, 3)],
)
def test_interval_next_slot_is_the_first_grid_slot_after_at(late_ms: int, expected_slots_later: int) -> None:
    due = at("2026-02-16T15:00:00.000Z")
    assert Cadence(every_minutes=5).next_slot(due, due + late_ms) == due + expected_slots_later * 5 * MINUTE_MS


def test_interval_first_after_is_one_interval_on() -> None:
    assert Cadence(every_minutes=10).first_after(1_000) == 1_000 + 10 * MINUTE_MS


def test_cron_slots_are_utc_matches_strictly_after() -> None:
    quarter = Cadence(cron="*/15 * * * *")
    assert iso(quarter.first_after(at("2026-02-16T15:00:00.000Z"))) == "2026-02-16T15:15:00.000Z"
    assert iso(quarter.first_after(at("2026-02-16T15:14:59.999Z"))) == "2026-02-16T15:15:00.000Z"
    # A tick late by 40 minutes moves the schedule to the first match after the tick, not the next one.
    assert iso(quarter.next_slot(at("2026-02-16T15:15:00.000Z"), at("2026-02-16T15:55:00.000Z"))) == (
        "2026-02-16T16:00:00.000Z"
    )
    daily = Cadence(cron="30 9 * * 1")  # Mondays 09:30 UTC
    assert iso(daily.first_after(at("2026-02-16T10:00:00.000Z"))) == "2026-02-23T09:30:00.000Z"
    seconds = Cadence(cron="* * * * * */10")
    assert iso(seconds.first_after(at("2026-02-16T15:00:01.500Z"))) == "2026-02-16T15:00:10.000Z"


@pytest.mark.parametrize("bad", ["", "* * *", "61 * * * *", "* * * * * * *", "every day"])
def test_invalid_cron_is_a_config_error_naming_the_field(bad: str) -> None:
    with pytest.raises(AthenaError) as exc:
        parse_cron(bad, "schedules.create")
    assert exc.value.message.startswith("schedules.create.cron must be a cron expression")


def test_cron_is_normalised() -> None:
    assert parse_cron("  */5   *  * * * ", "x") == "*/5 * * * *"


def test_a_cadence_is_interval_or_cron() -> None:
    with pytest.raises(ValueError):
        Cadence()
    with pytest.raises(ValueError):
        Cadence(every_minutes=1, cron="* * * * *")

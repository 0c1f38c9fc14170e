"""Slot arithmetic of schedules: where a tick moves a schedule, and where an upsert or a manual run puts it."""

from __future__ import annotations

import time
import uuid

import pytest

from athena_server.control.schedule_slots import MINUTE_MS, Cadence, parse_cron
from athena_server.errors import AthenaError
from athena_server.storage import schedules
from athena_server.storage.store import Store
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


def test_a_cadence_names_what_it_needs() -> None:
    with pytest.raises(ValueError) as exc:
        Cadence()
    assert str(exc.value) == "a cadence is either every_minutes or cron"


def test_a_cron_that_never_matches_says_so() -> None:
    with pytest.raises(AthenaError) as exc:
        parse_cron("0 0 30 2 *", "schedules.create")
    assert exc.value.message == "schedules.create.cron never matches a date. Received: 0 0 30 2 *."


def test_cron_slots_are_utc_whatever_the_process_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        daily = Cadence(cron="30 9 * * 1")
        assert iso(daily.first_after(at("2026-02-16T10:00:00.000Z"))) == "2026-02-23T09:30:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


# ---- the store's exactly-once slot claims (a real SQLite store) ------------------------------------------


def schedule(sid: str, next_ms: int, enabled: bool = True) -> schedules.ScheduleRow:
    return schedules.ScheduleRow(sid, "s1", "in", 5, None, None, enabled, False, 1, 1, next_ms, None)


async def test_due_lists_enabled_schedules_at_or_before_the_tick_oldest_slot_first(store: Store) -> None:
    base = uuid.uuid4().hex
    rows = [schedule(f"{base}-b", 2000), schedule(f"{base}-a", 2000), schedule(f"{base}-c", 1000)]
    rows += [schedule(f"{base}-late", 2001), schedule(f"{base}-off", 500, enabled=False)]
    for row in rows:
        await store.write(lambda conn, row=row: schedules.upsert(conn, row))
    due = await store.read(lambda conn: schedules.due(conn, 2000))
    assert [r.id for r in due] == [f"{base}-c", f"{base}-a", f"{base}-b"]


async def test_one_of_two_ticks_reading_the_same_slot_fires_it(store: Store) -> None:
    sid = uuid.uuid4().hex
    await store.write(lambda conn: schedules.upsert(conn, schedule(sid, 1000)))
    seen = await store.read(lambda conn: schedules.get(conn, sid))
    assert seen is not None
    first = await store.write(lambda conn: schedules.advance(conn, seen, 2000, "p1", 1500))
    second = await store.write(lambda conn: schedules.advance(conn, seen, 2000, "p2", 1500))
    assert (first, second) == (True, False)
    now = await store.read(lambda conn: schedules.get(conn, sid))
    assert now is not None and now.next_run_at_ms == 2000 and now.running
    owned = await store.read(lambda conn: schedules.running_of(conn, ["p1"]))
    assert [(r.id, slot, since) for r, slot, since in owned] == [(sid, 1000, 1500)]
    assert await store.read(lambda conn: schedules.running_of(conn, ["p2"])) == []


async def test_a_running_schedule_is_not_fired_again_but_may_be_moved_on(store: Store) -> None:
    sid = uuid.uuid4().hex
    await store.write(lambda conn: schedules.upsert(conn, schedule(sid, 1000)))
    assert await store.write(lambda conn: schedules.start_manual(conn, sid, "p1", 900))
    assert not await store.write(lambda conn: schedules.start_manual(conn, sid, "p2", 950))
    seen = await store.read(lambda conn: schedules.get(conn, sid))
    assert seen is not None
    assert not await store.write(lambda conn: schedules.advance(conn, seen, 2000, "p2", 1500))
    assert await store.write(lambda conn: schedules.advance(conn, seen, 2000, None, 1500))
    assert not await store.write(lambda conn: schedules.advance(conn, seen, 3000, None, 1500))
    owned = await store.read(lambda conn: schedules.running_of(conn, ["p1"]))
    assert [(r.id, r.next_run_at_ms, slot, since) for r, slot, since in owned] == [(sid, 2000, None, 900)]
    await store.write(lambda conn: schedules.finish(conn, sid, last_run_at_ms=1600))
    after = await store.read(lambda conn: schedules.get(conn, sid))
    assert after is not None and not after.running and after.last_run_at_ms == 1600
    assert await store.read(lambda conn: schedules.running_of(conn, ["p1"])) == []
    assert await store.write(lambda conn: schedules.start_manual(conn, sid, "p2", 1700))


async def test_a_disabled_schedule_is_not_claimed(store: Store) -> None:
    sid = uuid.uuid4().hex
    await store.write(lambda conn: schedules.upsert(conn, schedule(sid, 1000)))
    seen = await store.read(lambda conn: schedules.get(conn, sid))
    assert seen is not None
    await store.write(lambda conn: schedules.set_enabled(conn, sid, False, 1000, 1200))
    assert not await store.write(lambda conn: schedules.advance(conn, seen, 2000, "p1", 1500))
    assert not await store.write(lambda conn: schedules.advance(conn, seen, 2000, None, 1500))


def log(sid: str, slot: int | None) -> schedules.LogRow:
    return schedules.LogRow(0, schedules.new_log_id(), sid, "s1", slot, 10, 20, "succeeded", None, None, "r1")


async def test_a_slot_is_logged_once_per_schedule(store: Store) -> None:
    sid, other = uuid.uuid4().hex, uuid.uuid4().hex
    first = await store.write(lambda conn: schedules.add_log(conn, log(sid, 1000)))
    again = await store.write(lambda conn: schedules.add_log(conn, log(sid, 1000)))
    elsewhere = await store.write(lambda conn: schedules.add_log(conn, log(other, 1000)))
    manual = await store.write(lambda conn: schedules.add_log(conn, log(sid, None)))
    assert (first.slot_ms, again.slot_ms, elsewhere.slot_ms, manual.slot_ms) == (1000, None, 1000, None)
    assert first.seq < again.seq < elsewhere.seq < manual.seq
    stored = await store.read(lambda conn: schedules.logs(conn, sid, 10, None))
    assert stored == [manual, again, first]


async def test_claims_touch_only_their_schedule(store: Store) -> None:
    one, two = uuid.uuid4().hex, uuid.uuid4().hex
    for sid in (one, two):
        await store.write(lambda conn, sid=sid: schedules.upsert(conn, schedule(sid, 1000)))
    seen = await store.read(lambda conn: schedules.get(conn, one))
    assert seen is not None
    assert await store.write(lambda conn: schedules.advance(conn, seen, 2000, None, 1500))
    assert await store.write(lambda conn: schedules.start_manual(conn, one, "p1", 1500))
    other = await store.read(lambda conn: schedules.get(conn, two))
    assert other is not None and other.next_run_at_ms == 1000 and not other.running
    assert await store.write(lambda conn: schedules.start_manual(conn, two, "p1", 1500))


async def test_each_slot_of_a_schedule_keeps_its_own_record(store: Store) -> None:
    sid = uuid.uuid4().hex
    first = await store.write(lambda conn: schedules.add_log(conn, log(sid, 1000)))
    second = await store.write(lambda conn: schedules.add_log(conn, log(sid, 2000)))
    assert (first.slot_ms, second.slot_ms) == (1000, 2000)

"""When a schedule fires: the slot arithmetic for `everyMinutes` and `cron` schedules.

Slots are instants in epoch milliseconds. An interval schedule's slots are its anchor (`nextRunAt`) plus
whole intervals, so a late tick does not drift the schedule; a cron schedule's slots are the expression's
matches in UTC (five fields, or six with seconds last). A tick at `at` fires each due schedule once and
moves it to its *first slot after* `at`: slots missed while no tick ran are coalesced into that one run
rather than replayed in a burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from athena_server.errors import config_error
from athena_server.validation import MAX_INSTANT_MS

MINUTE_MS = 60_000
# Slots are clamped to the last instant the API can write (9999-12-31T23:59:59.999Z): a slot past it (a tick
# far in the future, a huge interval) would be stored and then fail every answer that shows the schedule.
LAST_SLOT_MS = MAX_INSTANT_MS


@dataclass(frozen=True)
class Cadence:
    every_minutes: int | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.every_minutes is None) == (self.cron is None):
            raise ValueError("a cadence is either every_minutes or cron")

    def first_after(self, instant_ms: int) -> int:
        """The first cron match strictly after `instant_ms`, or for an interval `instant_ms` + interval
        (the original's rule for a schedule created or run at that instant)."""
        if self.every_minutes is not None:
            return min(instant_ms + self.every_minutes * MINUTE_MS, LAST_SLOT_MS)
        assert self.cron is not None
        start = datetime.fromtimestamp(instant_ms / 1000, tz=UTC)
        try:
            return min(round(croniter(self.cron, start).get_next(float) * 1000), LAST_SLOT_MS)
        except (OverflowError, ValueError):  # no match before the calendar ends (CroniterBadDateError)
            return LAST_SLOT_MS

    def next_slot(self, due_ms: int, at_ms: int) -> int:
        """The first slot after `at_ms` of a schedule whose slot `due_ms` (<= at_ms) is firing."""
        if self.every_minutes is not None:
            step = self.every_minutes * MINUTE_MS
            return min(due_ms + ((at_ms - due_ms) // step + 1) * step, LAST_SLOT_MS)
        return self.first_after(at_ms)


def parse_cron(expression: str, context: str) -> str:
    """A valid cron expression (5 fields, or 6 with seconds last) that matches some date (`0 0 30 2 *` is
    valid syntax and never fires), normalised to single spaces."""
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(" ".join(fields)):
        raise config_error(
            f"{context}.cron must be a cron expression of 5 fields (minute hour day month weekday) or 6 "
            f"(with seconds last). Received: {expression}."
        )
    normalised = " ".join(fields)
    try:
        croniter(normalised, datetime.now(tz=UTC)).get_next(float)
    except (OverflowError, ValueError):
        raise config_error(f"{context}.cron never matches a date. Received: {expression}.") from None
    return normalised

"""The service's daily-record step: what the `daily_record` rule reads, and writing
the record of the latest cut-off from the first ok cycle after it.

Called by `service.run_cycle`; the record is written in the cycle's own
transaction, so a crash leaves neither or both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .records import build_record, due_record
from .rules_records import LOOKBACK_DAYS
from .settings import Settings
from .store import Store

__all__ = ["record_inputs", "write_due_record"]


def record_inputs(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """RuleInput fields of `daily_record`: the dates recorded before this cycle."""
    since = (now - timedelta(days=LOOKBACK_DAYS + 2)).date().isoformat()
    return {
        "record_dates": store.daily_record_dates(since),
        "first_cycle_at": store.first_cycle_at() or now,
        "records_timezone": settings.schedule.timezone,
        "records_cutoff": settings.schedule.records_cutoff,
    }


def write_due_record(store: Store, settings: Settings, now: datetime,
                     poll: Mapping[str, Any], cycle_id: int) -> int | None:
    """Inside the cycle's transaction, after an ok cycle: write the record of the latest
    cut-off's business date if it has none and the store's first cycle was taken at or
    before that cut-off. Returns the audit seq, or None."""
    due = due_record(now, settings.schedule, store.last_daily_record_date())
    if due is None or poll.get("exposure") is None:
        return None
    day, cutoff = due
    first = store.first_cycle_at()
    if first is not None and cutoff < first:
        return None  # the store did not exist at that cut-off: nothing to record, nothing late
    record = build_record(day, cutoff, poll, cycle_id, settings.schedule.poll_every)
    return store.write_daily_record(day, record, now)

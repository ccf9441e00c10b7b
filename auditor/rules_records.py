"""daily_record: the record of a business date was not written in time.

Subject: the business date (YYYY-MM-DD). A date is checked once its cut-off
is more than GRACE_POLLS × poll_every old, for cut-offs since the store's
first cycle and within the last `LOOKBACK_DAYS`. A date with a record is
covered, so its alert resolves (a late record resolves it). A date whose
cut-off was followed by a newer one can never get a record (records are
never back-filled): its alert keeps firing until a person acknowledges or
silences it, and leaves the checked window after LOOKBACK_DAYS.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from . import units
from .model import Evaluation, Finding
from .records import business_date, cutoffs_between, grace_s
from .rules_base import RuleInput

__all__ = ["LOOKBACK_DAYS", "daily_record"]

LOOKBACK_DAYS = 31


def daily_record(inp: RuleInput) -> Evaluation:
    dates = inp.record_dates
    if dates is None or inp.first_cycle_at is None:
        return Evaluation("daily_record")  # records not tracked by this caller
    tz, hhmm, grace = inp.records_timezone, inp.records_cutoff, grace_s(inp.poll_every)
    start = max(inp.first_cycle_at, inp.now - timedelta(days=LOOKBACK_DAYS))
    cutoffs = list(cutoffs_between(start, inp.now, tz, hhmm))
    findings: list[Finding] = []
    covered: set[str] = set()
    for i, cutoff in enumerate(cutoffs):
        day = business_date(cutoff, tz)
        if day in dates:
            covered.add(day)
            continue
        age = int((inp.now - cutoff).total_seconds())
        if age <= grace:
            continue
        final = i + 1 < len(cutoffs)  # a newer cut-off passed: it can never be written
        todo = ("it can never be written now (records are never back-filled): find out why, "
                "note it for the auditor and acknowledge this alert" if final else
                "the next complete cycle writes it, marked late: check the daemon and the chains")
        local = cutoff.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
        findings.append(Finding(
            "daily_record", day, "warning",
            f"No daily record for {day}: none was written within "
            f"{units.format_duration(grace)} of its cut-off ({local} {tz}); {todo}",
            value=Decimal(age), threshold=Decimal(grace),
            details={"cutoff": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"), "final": final},
        ))
    return Evaluation("daily_record", tuple(findings), frozenset(covered))

"""The daemon's scheduled reports: after a cycle, write the report of the latest
closed period (`reports.every`) once.

"Once" is kept in the store, not in memory: a `report` audit record with
`scheduled: true` for the period means it was written (a restart does not
write it again). The process also remembers the last period it checked, so
the audit log is queried once per period, not once per cycle. Only the
latest closed period is written (a daemon down for two periods writes the
second); `auditor report --from --to` writes any other.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..settings import Settings
from ..store import Store
from .period import closed_period
from .write import WrittenReport, write_report

__all__ = ["ReportScheduler"]

log = logging.getLogger("auditor.reports")


class ReportScheduler:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._checked: str | None = None  # the period last found written (or written)

    def due(self, store: Store, now: datetime) -> WrittenReport | None:
        """Write the latest closed period's report if it is not written yet."""
        cfg = getattr(self.settings, "reports", None)
        if cfg is None:
            return None
        period = closed_period(now, cfg.every, self.settings.schedule)
        if self._checked == period.name:
            return None
        first, last = period.first.isoformat(), period.last.isoformat()
        started = store.first_cycle_at()
        if started is None or started >= period.end or store.report_written(first, last, True):
            self._checked = period.name  # nothing to report on, or done already
            return None
        written = write_report(store, self.settings, period.first, period.last, cfg.formats,
                               cfg.out, now=now, scheduled=True)
        self._checked = period.name
        log.info("report written", extra={"fields": {
            "from": first, "to": last, "files": [str(p) for p in written.paths],
            "seq": written.seq}})
        return written

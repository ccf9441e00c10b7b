"""Prometheus metrics of the daemon, in a private registry.

Each cycle's outcome (its `poll` JSON object, see DESIGN.md) is turned into
gauges. Floats are fine here: metrics are not amounts of record; the exact
decimal strings of the poll object are converted with `float()` only in this
module. A value that is `null` in the poll object (a ratio that could not be
computed, a failed cycle's exposure) is exported as NaN, never 0, so that an
alert such as `auditor_hot_ratio > 0.05` neither fires nor resolves on data
that does not exist.

Metric names (all gauges unless said):

- `auditor_up`: 1 while the daemon runs.
- `auditor_hot_ratio`: the combined hot ratio (NaN when null).
- `auditor_asset_hot_ratio{asset}`: per-asset N ÷ L (NaN when null).
- `auditor_holdings{asset,tier,role}`: settled holdings in whole units;
  tier hot/warm/deposit/cold with role customer, tier cold role guarantee,
  tier all role proprietary.
- `auditor_alerts_firing{severity}`: alerts firing after the last cycle.
- `auditor_last_success_timestamp_seconds`: start (`taken_at`) of the last
  cycle with status ok, unix seconds.
- `auditor_chain_lag_seconds{chain}`: now − head block time per chain (NaN
  for a chain the cycle could not read).
- `auditor_cycle_duration_seconds`: duration of the last cycle.
- `auditor_cycles_total{status}` (counter): cycles by status ok/partial/failed
  (a cycle that raised counts as failed).
- `auditor_heartbeat_failures_total` (counter): heartbeat POSTs that failed.
- `auditor_transfers_total{chain,class}` (counter): transfers first seen, by class
  (internal, withdrawal, allowed, unknown, sanctioned, fee).
- `auditor_transfers_ingested_block{chain}`: the last block whose transfers were
  ingested (compare with the head: a growing gap is an ingestion backlog).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .units import parse_decimal

__all__ = ["CONTENT_TYPE", "CycleOutcomeLike", "DaemonMetrics", "whole_units"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
NAN = math.nan
SEVERITIES = ("warning", "critical")
STATUSES = ("ok", "partial", "failed")
# poll JSON asset key → (tier, role) of auditor_holdings
HOLDING_KEYS: dict[str, tuple[str, str]] = {
    "hot": ("hot", "customer"),
    "warm": ("warm", "customer"),
    "deposit": ("deposit", "customer"),
    "cold": ("cold", "customer"),
    "guarantee": ("cold", "guarantee"),
    "proprietary": ("all", "proprietary"),
}


class CycleOutcomeLike(Protocol):
    """What the daemon needs from `service.CycleOutcome` (read-only, so any shape fits)."""

    @property
    def status(self) -> str: ...
    @property
    def cycle_id(self) -> int | None: ...
    @property
    def poll(self) -> Mapping[str, Any]: ...
    @property
    def head(self) -> str: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def chain_lag_s(self) -> Mapping[str, float]: ...


def whole_units(text: object) -> float:
    """A poll-JSON decimal string (or null) as a float for Prometheus; null → NaN."""
    if text is None:
        return NAN
    try:
        return float(parse_decimal(text))  # type: ignore[arg-type]
    except ValueError:
        return NAN


class DaemonMetrics:
    """The daemon's gauges and counters. Thread-safe: cycles write, HTTP reads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        r = self.registry
        self.up = Gauge("auditor_up", "1 while the auditor daemon runs", registry=r)
        self.hot_ratio = Gauge(
            "auditor_hot_ratio", "Combined hot ratio (NaN when it cannot be computed)", registry=r
        )
        self.asset_hot_ratio = Gauge(
            "auditor_asset_hot_ratio", "Per-asset hot ratio N/L (NaN when null)", ["asset"],
            registry=r,
        )
        self.holdings = Gauge(
            "auditor_holdings", "Settled holdings in whole units", ["asset", "tier", "role"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            "auditor_alerts_firing", "Alerts firing after the last cycle", ["severity"],
            registry=r,
        )
        self.last_success = Gauge(
            "auditor_last_success_timestamp_seconds",
            "Start time of the last cycle with status ok (unix seconds)", registry=r,
        )
        self.chain_lag = Gauge(
            "auditor_chain_lag_seconds", "Now minus the head block's timestamp", ["chain"],
            registry=r,
        )
        self.cycle_duration = Gauge(
            "auditor_cycle_duration_seconds", "Duration of the last cycle", registry=r
        )
        self.cycles = Counter("auditor_cycles", "Cycles by status", ["status"], registry=r)
        self.transfers = Counter("auditor_transfers", "Transfers first seen, by class",
                                 ["chain", "class"], registry=r)
        self.ingested_block = Gauge("auditor_transfers_ingested_block",
                                    "Last block whose transfers were ingested", ["chain"], registry=r)
        self.heartbeat_failures = Counter(
            "auditor_heartbeat_failures", "Heartbeat POSTs that failed", registry=r
        )
        self._init_series()

    def _init_series(self) -> None:
        # Series exist from the start (0 cycles, NaN ratio) so rate() and absent() behave.
        self.up.set(1)
        self.hot_ratio.set(NAN)
        self.cycle_duration.set(NAN)
        for status in STATUSES:
            self.cycles.labels(status=status)
        for severity in SEVERITIES:
            self.alerts_firing.labels(severity=severity).set(0)

    def generate(self) -> bytes:
        """The Prometheus text exposition of the private registry."""
        with self._lock:
            return generate_latest(self.registry)

    def observe(self, outcome: CycleOutcomeLike, *, taken_at: datetime) -> None:
        """Record one finished cycle."""
        status = outcome.status if outcome.status in STATUSES else "failed"
        poll: Mapping[str, Any] = outcome.poll or {}
        with self._lock:
            self.cycles.labels(status=status).inc()
            self.cycle_duration.set(float(outcome.duration_s))
            if status == "ok":
                self.last_success.set(taken_at.timestamp())
            self._set_exposure(poll.get("exposure"))
            self._set_alerts(poll.get("alerts"))
            self._set_chain_lag(poll.get("chains") or {}, outcome.chain_lag_s or {})
            self._count_transfers(poll.get("chains") or {})

    def observe_crash(self, duration_s: float) -> None:
        """Record a cycle that raised: it counts as failed; what it would have set is unknown."""
        with self._lock:
            self.cycles.labels(status="failed").inc()
            self.cycle_duration.set(duration_s)
            self._set_exposure(None)

    def heartbeat_failed(self) -> None:
        self.heartbeat_failures.inc()

    def _set_exposure(self, exposure: Mapping[str, Any] | None) -> None:
        if exposure is None:
            # Unknown now: keep the series (dashboards, absent()) but never a stale value.
            self.hot_ratio.set(NAN)
            _set_all_nan(self.asset_hot_ratio)
            _set_all_nan(self.holdings)
            return
        self.hot_ratio.set(whole_units(exposure.get("hot_ratio")))
        self.asset_hot_ratio.clear()
        self.holdings.clear()  # an asset no longer configured disappears
        assets: Mapping[str, Mapping[str, Any]] = exposure.get("assets") or {}
        for symbol, fig in assets.items():
            self.asset_hot_ratio.labels(asset=symbol).set(whole_units(fig.get("hot_ratio")))
            for key, (tier, role) in HOLDING_KEYS.items():
                if key in fig:
                    self.holdings.labels(asset=symbol, tier=tier, role=role).set(
                        whole_units(fig[key])
                    )

    def _set_alerts(self, alerts: object) -> None:
        if not isinstance(alerts, list):
            return  # no information: keep the last count
        counts = dict.fromkeys(SEVERITIES, 0)
        for alert in alerts:
            if not isinstance(alert, Mapping) or alert.get("state") == "resolved":
                continue  # `alerts` also lists the alerts resolved in the cycle
            severity = str(alert.get("severity"))
            counts[severity] = counts.get(severity, 0) + 1
        for severity, n in counts.items():
            self.alerts_firing.labels(severity=severity).set(n)

    def _set_chain_lag(
        self, chains: Mapping[str, Any], lag: Mapping[str, float]
    ) -> None:
        self.chain_lag.clear()
        for name in set(chains) | set(lag):
            value = lag.get(name)
            self.chain_lag.labels(chain=name).set(NAN if value is None else float(value))


    def _count_transfers(self, chains: Mapping[str, Any]) -> None:
        for name, chain in chains.items():
            t = chain.get("transfers") if isinstance(chain, Mapping) else None
            if not isinstance(t, Mapping):
                continue
            for cls, n in (t.get("new") or {}).items():
                self.transfers.labels(chain=name, **{"class": cls}).inc(int(n))
            if t.get("ingested_to") is not None:
                self.ingested_block.labels(chain=name).set(int(t["ingested_to"]))


def _set_all_nan(gauge: Gauge) -> None:
    # collect() is the public way to list a labelled metric's children.
    label_sets = [dict(s.labels) for fam in gauge.collect() for s in fam.samples]
    for labels in label_sets:
        gauge.labels(**labels).set(NAN)

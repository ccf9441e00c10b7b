"""Daemon parts without a scheduler: metrics, probes, logging, redaction."""

from __future__ import annotations

import io
import json
import logging
import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditor.daemon import scrub, setup_logging
from auditor.health import DaemonState, HealthServer, check_live, check_ready, rfc3339
from auditor.metrics import DaemonMetrics

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@dataclass
class Outcome:
    status: str = "ok"
    cycle_id: int | None = 1
    poll: dict[str, Any] = field(default_factory=dict)
    head: str = "ab" * 32
    duration_s: float = 0.25
    chain_lag_s: dict[str, float] = field(default_factory=dict)


def poll(hot_ratio: str | None = "0.03125", alerts: list[dict[str, Any]] | None = None) -> dict:
    eth = {
        "class": "crypto", "hot": "12.5", "warm": "1", "deposit": "0.5", "cold": "387.5",
        "online": "14", "guarantee": "13", "proprietary": "2", "liabilities": "400",
        "price": "450000", "hot_ratio": hot_ratio,
    }
    return {
        "exchange": "ex", "cycle": 1, "taken_at": "2026-11-24T10:00:00Z", "status": "ok",
        "chains": {"ethereum": {"ok": True}, "bitcoin": {"ok": False}},
        "exposure": {"hot_ratio": hot_ratio, "assets": {"ETH": eth}},
        "alerts": alerts or [],
    }


def samples(metrics: DaemonMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(metrics.generate().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: DaemonMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


# --- metrics ---------------------------------------------------------------------------


def test_metrics_export_ratios_holdings_and_lag_from_the_poll_object() -> None:
    m = DaemonMetrics()
    lag = {"ethereum": 14.5}
    m.observe(Outcome(poll=poll(), chain_lag_s=lag), taken_at=T0)
    assert value(m, "auditor_hot_ratio") == 0.03125
    assert value(m, "auditor_asset_hot_ratio", asset="ETH") == 0.03125
    assert value(m, "auditor_holdings", asset="ETH", tier="hot", role="customer") == 12.5
    assert value(m, "auditor_holdings", asset="ETH", tier="deposit", role="customer") == 0.5
    assert value(m, "auditor_holdings", asset="ETH", tier="cold", role="customer") == 387.5
    assert value(m, "auditor_holdings", asset="ETH", tier="cold", role="guarantee") == 13
    assert value(m, "auditor_holdings", asset="ETH", tier="all", role="proprietary") == 2
    assert value(m, "auditor_chain_lag_seconds", chain="ethereum") == 14.5
    assert math.isnan(value(m, "auditor_chain_lag_seconds", chain="bitcoin"))
    assert value(m, "auditor_last_success_timestamp_seconds") == T0.timestamp()
    assert value(m, "auditor_cycle_duration_seconds") == 0.25
    assert value(m, "auditor_cycles_total", status="ok") == 1
    assert value(m, "auditor_up") == 1


def test_transfers_are_counted_by_chain_and_class_and_the_ingested_block_exported() -> None:
    m = DaemonMetrics()
    p = poll()
    p["chains"]["ethereum"]["transfers"] = {"new": {"unknown": 2, "internal": 1}, "ingested_to": 120}
    m.observe(Outcome(poll=p), taken_at=T0)
    p["chains"]["ethereum"]["transfers"] = {"new": {"unknown": 1}, "ingested_to": 125}
    m.observe(Outcome(poll=p), taken_at=T0 + timedelta(minutes=1))
    assert value(m, "auditor_transfers_total", chain="ethereum", **{"class": "unknown"}) == 3
    assert value(m, "auditor_transfers_total", chain="ethereum", **{"class": "internal"}) == 1
    assert value(m, "auditor_transfers_ingested_block", chain="ethereum") == 125


def test_null_hot_ratio_is_exported_as_nan_not_zero() -> None:
    m = DaemonMetrics()
    m.observe(Outcome(poll=poll(hot_ratio=None)), taken_at=T0)
    assert math.isnan(value(m, "auditor_hot_ratio"))
    assert math.isnan(value(m, "auditor_asset_hot_ratio", asset="ETH"))


def test_failed_cycle_turns_known_ratios_and_holdings_to_nan() -> None:
    m = DaemonMetrics()
    m.observe(Outcome(poll=poll()), taken_at=T0)
    failed = {**poll(), "status": "failed", "exposure": None}
    m.observe(Outcome(status="failed", poll=failed), taken_at=T0 + timedelta(minutes=1))
    assert math.isnan(value(m, "auditor_hot_ratio"))
    assert math.isnan(value(m, "auditor_holdings", asset="ETH", tier="hot", role="customer"))
    # a failed cycle is not a success
    assert value(m, "auditor_last_success_timestamp_seconds") == T0.timestamp()
    assert value(m, "auditor_cycles_total", status="failed") == 1


def test_alerts_firing_counts_by_severity_and_skips_resolved() -> None:
    alerts = [
        {"rule": "hot_ratio", "severity": "critical", "state": "firing"},
        {"rule": "hot_drain", "severity": "critical", "state": "escalated"},
        {"rule": "hot_floor", "severity": "warning", "state": "resolved"},
    ]
    m = DaemonMetrics()
    m.observe(Outcome(poll=poll(alerts=alerts)), taken_at=T0)
    assert value(m, "auditor_alerts_firing", severity="critical") == 2
    assert value(m, "auditor_alerts_firing", severity="warning") == 0


def test_a_crashed_cycle_counts_as_failed() -> None:
    m = DaemonMetrics()
    m.observe_crash(1.5)
    assert value(m, "auditor_cycles_total", status="failed") == 1
    assert value(m, "auditor_cycle_duration_seconds") == 1.5


# --- probes ---------------------------------------------------------------------------------


def test_livez_fails_when_no_cycle_started_within_two_polls() -> None:
    state = DaemonState(started_at=T0)
    assert check_live(state, T0 + timedelta(seconds=120), poll_every=60).ok
    assert not check_live(state, T0 + timedelta(seconds=121), poll_every=60).ok
    state.cycle_started(T0 + timedelta(seconds=100))
    assert check_live(state, T0 + timedelta(seconds=220), poll_every=60).ok
    assert not check_live(state, T0 + timedelta(seconds=221), poll_every=60).ok


def test_readyz_needs_an_ok_cycle_younger_than_the_stale_limit() -> None:
    state = DaemonState(started_at=T0)
    assert not check_ready(state, T0, max_age=180).ok
    state.cycle_ok(T0)
    assert check_ready(state, T0 + timedelta(seconds=180), max_age=180).ok
    probe = check_ready(state, T0 + timedelta(seconds=181), max_age=180)
    assert not probe.ok and "181s" in probe.reason


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_health_server_answers_probes_and_metrics_on_a_free_port() -> None:
    now = [T0]
    state = DaemonState(started_at=T0)
    server = HealthServer(
        "127.0.0.1", 0, metrics=DaemonMetrics(), state=state, clock=lambda: now[0],
        poll_every=60, stale_max_age=180,
    )
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert server.port > 0
        code, body = get(base + "/readyz")
        assert code == 503 and json.loads(body) == {"ok": False, "reason": "no cycle with status ok yet"}
        state.cycle_started(T0)
        state.cycle_ok(T0)
        assert get(base + "/readyz")[0] == 200
        assert get(base + "/livez")[0] == 200
        now[0] = T0 + timedelta(seconds=200)
        assert get(base + "/readyz")[0] == 503
        assert get(base + "/livez")[0] == 503
        code, body = get(base + "/metrics")
        assert code == 200 and b"auditor_up 1.0" in body
        assert get(base + "/nope")[0] == 404
    finally:
        server.stop()


# --- logging and redaction ------------------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_fields() -> None:
    out = io.StringIO()
    handler = setup_logging(json=True, stream=out)
    try:
        logging.getLogger("auditor.test").info("cycle finished", extra={"fields": {"cycle": 7}})
        logging.getLogger("auditor.test").warning("plain")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.getvalue().splitlines()
    first = json.loads(lines[0])
    assert first["msg"] == "cycle finished" and first["level"] == "info"
    assert first["fields"] == {"cycle": 7} and first["ts"].endswith("Z")
    assert json.loads(lines[1])["fields"] == {}


def test_text_logs_on_a_terminal_are_readable() -> None:
    out = io.StringIO()
    handler = setup_logging(json=False, stream=out)
    try:
        logging.getLogger("auditor.test").info("cycle finished", extra={"fields": {"cycle": 7}})
    finally:
        logging.getLogger().removeHandler(handler)
    assert "INFO" in out.getvalue() and "cycle finished  cycle=7" in out.getvalue()


def test_setup_logging_silences_httpx_request_lines_that_carry_urls() -> None:
    handler = setup_logging(json=True, stream=io.StringIO())
    logging.getLogger().removeHandler(handler)
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


def test_scrub_masks_secrets_and_reduces_urls() -> None:
    text = "ConnectError: https://hc.example/ping/tok123 failed; key sk_live_9 leaked"
    clean = scrub(text, frozenset({"sk_live_9"}))
    assert "tok123" not in clean and "sk_live_9" not in clean
    assert "https://hc.example:443" in clean


def test_rfc3339_is_utc_with_z() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert rfc3339(datetime(2026, 11, 24, 19, 0, tzinfo=tokyo)) == "2026-11-24T10:00:00Z"


@pytest.fixture(autouse=True)
def _restore_root_level() -> Any:
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)

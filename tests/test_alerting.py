"""Alert lifecycle, fingerprints, routing and JSON (DESIGN.md "Alerts")."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from auditor import alerting
from auditor.errors import AuditorError
from auditor.model import Alert, Evaluation, Finding, Transition
from auditor.settings import RouteSettings

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
EX = "example-ex"
D = Decimal


def fnd(rule: str = "hot_ratio", subject: str = "combined", severity: str = "warning",
        value: str = "0.045") -> Finding:
    sev: Any = severity
    return Finding(rule, subject, sev, f"{rule} {value}", D(value), D("0.04"))


def ev(rule: str = "hot_ratio", *findings: Finding, covered: tuple[str, ...] = ("combined",),
       covers_all: bool = False) -> Evaluation:
    return Evaluation(rule, tuple(findings), frozenset(covered), covers_all)


class Book:
    """Plays the store: keeps the firing alerts between cycles."""

    def __init__(self) -> None:
        self.open: dict[str, Alert] = {}

    def cycle(self, now: datetime, *evals: Evaluation, partial: bool = False,
              repeat_every: int = 3600) -> list[str]:
        up = alerting.advance(list(evals), dict(self.open), now, EX, repeat_every, partial)
        for a in up.alerts:
            if a.state == "firing":
                self.open[a.fingerprint] = a
            else:
                self.open.pop(a.fingerprint, None)
        return [t.kind for t in up.transitions]

    def only(self) -> Alert:
        (a,) = self.open.values()
        return a


def test_fingerprint_is_sha256_of_id_rule_subject() -> None:
    expected = hashlib.sha256(b"example-ex\nhot_drain\neth-hot-1/ETH").hexdigest()
    assert alerting.fingerprint("example-ex", "hot_drain", "eth-hot-1/ETH") == expected
    # the same vector, pinned, so that a change of hashing shows here
    assert expected == "d11e912949a157c77ff79f7f78200514c12ea12d563a6fb13bbd28bd10244175"


def test_fingerprint_differs_per_exchange_rule_and_subject() -> None:
    fps = {alerting.fingerprint(*k) for k in [("a", "r", "s"), ("b", "r", "s"), ("a", "q", "s"),
                                              ("a", "r", "t"), ("a\nr", "", "s")]}
    assert len(fps) == 5


def test_lifecycle_firing_repeat_escalated_fall_resolved() -> None:
    b = Book()
    assert b.cycle(T0, ev("hot_ratio", fnd())) == ["firing"]
    since = b.only().since
    assert b.cycle(T0 + HOUR - timedelta(seconds=1), ev("hot_ratio", fnd())) == []
    assert b.cycle(T0 + HOUR, ev("hot_ratio", fnd(value="0.046"))) == ["repeat"]
    assert b.only().value == D("0.046")
    assert b.cycle(T0 + 2 * HOUR, ev("hot_ratio", fnd(severity="critical", value="0.06"))) == [
        "escalated"]
    assert b.only().severity == "critical"
    # severity falls: nothing sent, the alert keeps firing at the lower severity
    assert b.cycle(T0 + 2 * HOUR + timedelta(minutes=1), ev("hot_ratio", fnd())) == []
    assert b.only().severity == "warning" and b.only().since == since
    assert b.cycle(T0 + 3 * HOUR, ev("hot_ratio")) == ["resolved"]
    assert b.open == {}
    # a later finding starts a new episode
    assert b.cycle(T0 + 4 * HOUR, ev("hot_ratio", fnd())) == ["firing"]
    assert b.only().since == T0 + 4 * HOUR


def test_repeat_counts_from_last_notification() -> None:
    b = Book()
    b.cycle(T0, ev("hot_ratio", fnd()))
    b.cycle(T0 + 30 * timedelta(minutes=1), ev("hot_ratio", fnd(severity="critical")))  # escalated
    assert b.cycle(T0 + HOUR, ev("hot_ratio", fnd(severity="critical"))) == []
    assert b.cycle(T0 + 90 * timedelta(minutes=1), ev("hot_ratio", fnd(severity="critical"))) == [
        "repeat"]


def test_acked_alert_gets_no_repeat_but_does_escalate() -> None:
    b = Book()
    b.cycle(T0, ev("hot_ratio", fnd()))
    fp = b.only().fingerprint
    b.open[fp] = replace(b.only(), acked_by="alice", acked_at=T0)
    assert b.cycle(T0 + 5 * HOUR, ev("hot_ratio", fnd())) == []
    assert b.cycle(T0 + 6 * HOUR, ev("hot_ratio", fnd(severity="critical"))) == ["escalated"]


def test_partial_cycle_resolves_only_covered_subjects() -> None:
    b = Book()
    b.cycle(T0, ev("reserve_coverage", fnd("reserve_coverage", "ETH"),
                   fnd("reserve_coverage", "BTC"), covered=("ETH", "BTC")))
    # BTC's chain unreadable: only ETH evaluated; covers_all is not trusted on a partial cycle
    kinds = b.cycle(T0 + 60 * timedelta(seconds=1),
                    ev("reserve_coverage", covered=("ETH",), covers_all=True), partial=True)
    assert kinds == ["resolved"]
    assert [a.subject for a in b.open.values()] == ["BTC"]


def test_rule_not_evaluated_resolves_nothing() -> None:
    b = Book()
    b.cycle(T0, ev("hot_ratio", fnd()))
    assert b.cycle(T0 + timedelta(minutes=1)) == []
    assert b.cycle(T0 + timedelta(minutes=2), ev("hot_ratio", covered=())) == []
    assert len(b.open) == 1


def test_covers_all_resolves_on_a_complete_cycle() -> None:
    b = Book()
    b.cycle(T0, ev("asset_hot_ratio", fnd("asset_hot_ratio", "ETH"), covered=("ETH",)))
    assert b.cycle(T0 + HOUR / 2, ev("asset_hot_ratio", covered=(), covers_all=True)) == [
        "resolved"]


def test_event_rule_never_resolves_by_evaluation_and_keeps_worst_event() -> None:
    b = Book()
    crit = fnd("hot_drain", "eth-hot/ETH", "critical", "0.4")
    b.cycle(T0, ev("hot_drain", crit))
    assert b.cycle(T0 + timedelta(minutes=1), ev("hot_drain", covered=("eth-hot/ETH",),
                                                 covers_all=True)) == []
    assert b.cycle(T0 + timedelta(minutes=2),
                   ev("hot_drain", fnd("hot_drain", "eth-hot/ETH", "warning", "0.6"))) == []
    assert b.only().severity == "critical" and b.only().value == D("0.4")
    assert b.cycle(T0 + timedelta(minutes=3),
                   ev("hot_drain", fnd("hot_drain", "eth-hot/ETH", "critical", "0.5"))) == []
    assert b.only().value == D("0.5")
    assert b.cycle(T0 + HOUR, ev("hot_drain")) == ["repeat"]  # still firing without a finding


def test_escalation_across_drain_windows() -> None:
    b = Book()
    assert b.cycle(T0, ev("hot_drain", fnd("hot_drain", "h/ETH", "warning", "0.55"))) == ["firing"]
    assert b.cycle(T0 + timedelta(minutes=5),
                   ev("hot_drain", fnd("hot_drain", "h/ETH", "critical", "0.33"))) == ["escalated"]


def test_duplicate_findings_for_one_subject_keep_the_worst() -> None:
    up = alerting.advance([ev("stale_data", fnd("stale_data", "ethereum", "warning"),
                              fnd("stale_data", "ethereum", "critical"))], {}, T0, EX, 3600, False)
    assert [(t.kind, t.severity) for t in up.transitions] == [("firing", "critical")]


def test_manual_resolve_records_who_and_why() -> None:
    b = Book()
    b.cycle(T0, ev("cold_outflow", fnd("cold_outflow", "btc-cold/BTC", "critical", "50")))
    alert, t = alerting.manual_resolve(b.only(), T0 + HOUR, "alice", "approved by phone")
    assert alert.state == "resolved" and t.kind == "resolved"
    assert t.details["resolved_by"] == "alice" and t.details["reason"] == "approved by phone"
    with pytest.raises(AuditorError):
        alerting.manual_resolve(alert, T0 + HOUR, "alice", "again")


# --- routing -----------------------------------------------------------------------


def tr(rule: str, subject: str, severity: str = "critical", kind: str = "firing") -> Transition:
    k: Any = kind
    sev: Any = severity
    return Transition(k, alerting.fingerprint(EX, rule, subject), rule, subject, sev, T0, "s")


ROUTES = (  # fan out (continue) until btc-desk, which stops the search
    RouteSettings(("soc", "pager", "slack"), severity=("critical",), continue_=True),
    RouteSettings(("slack",), severity=("warning",), continue_=True),
    RouteSettings(("btc-desk",), wallet=("btc-hot",), continue_=False),
    RouteSettings(("never",), chain=("bitcoin",), continue_=True),
    RouteSettings(("eth-desk",), chain=("ethereum",), rule=("stale_data",)),
)


def test_route_fans_out_and_dedupes_in_order() -> None:
    got = alerting.route(tr("hot_drain", "eth-hot/ETH"), ROUTES, {"eth-hot": "ethereum"})
    assert got == ["soc", "pager", "slack"]


def test_route_filters_by_wallet_and_stops_when_continue_is_false() -> None:
    got = alerting.route(tr("hot_drain", "btc-hot/BTC", "warning"), ROUTES, {"btc-hot": "bitcoin"})
    assert got == ["slack", "btc-desk"]


def test_route_reads_chain_from_a_stale_data_subject() -> None:
    assert alerting.route(tr("stale_data", "ethereum", "warning"), ROUTES, {}) == [
        "slack", "eth-desk"]
    assert alerting.route(tr("stale_data", "liabilities", "warning"), ROUTES, {}) == ["slack"]


def test_route_is_first_match_by_default_like_alertmanager() -> None:
    routes = (RouteSettings(("desk",), rule=("hot_drain",)),
              RouteSettings(("soc",), severity=("critical",)),
              RouteSettings(("all",)))
    assert alerting.route(tr("hot_drain", "eth-hot/ETH"), routes, {}) == ["desk"]
    assert alerting.route(tr("cold_outflow", "eth-cold/ETH"), routes, {}) == ["soc"]
    assert alerting.route(tr("hot_ratio", "combined", "warning"), routes, {}) == ["all"]


def test_route_with_continue_also_gives_the_alert_to_the_next_match() -> None:
    routes = (RouteSettings(("desk",), rule=("hot_drain",), continue_=True),
              RouteSettings(("soc",), severity=("critical",)),
              RouteSettings(("all",)))
    assert alerting.route(tr("hot_drain", "eth-hot/ETH"), routes, {}) == ["desk", "soc"]


def test_route_matches_on_asset_and_chain_of_the_subject() -> None:
    routes = (RouteSettings(("usdc",), asset=("USDC",)),
              RouteSettings(("eth",), chain=("ethereum",)),
              RouteSettings(("rest",)))
    wc = {"eth-hot": "ethereum"}
    assert alerting.route(tr("hot_floor", "USDC", "warning"), routes, wc) == ["usdc"]
    assert alerting.route(tr("hot_drain", "eth-hot/ETH"), routes, wc) == ["eth"]
    assert alerting.route(tr("hot_ratio", "combined"), routes, wc) == ["rest"]


def test_repeat_interval_is_the_shortest_of_the_routes_the_alert_goes_to() -> None:
    routes = (RouteSettings(("pager",), severity=("critical",), repeat_every=600, continue_=True),
              RouteSettings(("slack",), repeat_every=7200, continue_=True),
              RouteSettings(("mail",)))
    unrouted = (RouteSettings(("pager",), rule=("hot_drain",), repeat_every=60),)
    crit = tr("hot_ratio", "combined")
    assert alerting.repeat_interval(crit, routes, {}, 3600) == 600
    assert alerting.repeat_interval(tr("hot_ratio", "combined", "warning"), routes, {},
                                    3600) == 3600  # slack 2h, mail falls back to 1h
    assert alerting.repeat_interval(crit, unrouted, {}, 3600) == 3600


def test_advance_repeats_at_the_interval_of_the_alerts_route() -> None:
    routes = (RouteSettings(("pager",), severity=("critical",), repeat_every=600),
              RouteSettings(("slack",), severity=("warning",)))
    every = lambda a: alerting.repeat_interval(a, routes, {}, 3600)  # noqa: E731
    open_: dict[str, Alert] = {}
    for f in (fnd(severity="critical"), fnd("hot_floor", "ETH")):
        up = alerting.advance([ev(f.rule, f, covered=(f.subject,))], {}, T0, EX, 3600, False,
                              repeat_for=every)
        open_.update({a.fingerprint: a for a in up.alerts})
    evals = [ev("hot_ratio", fnd(severity="critical")),
             ev("hot_floor", fnd("hot_floor", "ETH"), covered=("ETH",))]
    up = alerting.advance(evals, open_, T0 + timedelta(minutes=11), EX, 3600, False,
                          repeat_for=every)
    assert [(t.kind, t.rule) for t in up.transitions] == [("repeat", "hot_ratio")]


def test_resolved_goes_to_channels_that_got_the_firing() -> None:
    t = tr("hot_ratio", "combined", "warning", "resolved")
    assert alerting.route(t, ROUTES, {}, notified_channels=("soc", "pager")) == ["soc", "pager"]
    assert alerting.route(t, ROUTES, {}) == ["slack"]


# --- JSON ---------------------------------------------------------------------------


def test_alert_json_formats_ratio_and_plain_values() -> None:
    b = Book()
    value = "0.420000000000000001"
    b.cycle(T0, ev("hot_drain", fnd("hot_drain", "eth-hot/ETH", "critical", value)))
    j = alerting.alert_json(b.only())
    assert j == {"rule": "hot_drain", "subject": "eth-hot/ETH", "severity": "critical",
                 "state": "firing", "value": "0.42", "threshold": "0.04",
                 "fingerprint": alerting.fingerprint(EX, "hot_drain", "eth-hot/ETH"),
                 "summary": "hot_drain 0.420000000000000001", "since": "2026-11-24T10:00:00Z"}
    cold = Alert("f", "cold_outflow", "c/BTC", "critical", "firing", T0, T0, T0,
                 value=D("50.00002000"), threshold=None)
    assert alerting.alert_json(cold)["value"] == "50.00002"
    assert alerting.alert_json(cold)["threshold"] is None


def test_transition_json_adds_kind_and_seq_and_resolved_state() -> None:
    t = replace(tr("hot_ratio", "combined", "warning", "resolved"), seq=7,
                since=T0 - HOUR + timedelta(microseconds=500))
    j: dict[str, Any] = alerting.transition_json(t)
    assert j["transition"] == "resolved" and j["seq"] == 7 and j["state"] == "resolved"
    assert j["since"] == "2026-11-24T09:00:00Z"
    assert alerting.transition_json(replace(t, kind="repeat"))["state"] == "firing"

"""stale_data: inputs that are unreadable, too old or disagreeing.

Subjects: the chain's name, `prices:ASSET`, `liabilities`, `cycles`. Every
subject checked is covered, so a chain that reads fine again resolves its
alert. One finding per subject, at the worst severity of its problems.
"""

from __future__ import annotations

from decimal import Decimal

from .model import SEVERITY_RANK, Evaluation, Finding, ProviderProblem, Severity
from .rules_base import ChainStatus, InputStatus, RuleInput

__all__ = ["stale_data"]


def stale_data(inp: RuleInput) -> Evaluation:
    findings: list[Finding] = []
    covered: set[str] = set()
    for chain, st in inp.chain_status.items():
        covered.add(chain)
        f = _chain(chain, st)
        if f is not None:
            findings.append(f)
    for subject, f in (_liabilities(inp), _cycles(inp)):
        if subject is not None:
            covered.add(subject)
            if f is not None:
                findings.append(f)
    for subject, ps in _price_statuses(inp).items():
        covered.add(subject)
        if ps.state != "ok":
            findings.append(Finding(
                "stale_data", subject, "critical",
                f"{ps.reason or subject + ' ' + ps.state}: hot_ratio cannot be computed; "
                "fix the price source",
                details={"state": ps.state, "as_of": _iso(ps)}))
    return Evaluation("stale_data", tuple(findings), frozenset(covered))


def _chain(chain: str, st: ChainStatus) -> Finding | None:
    issues: list[tuple[Severity, str]] = []
    if not st.ok:
        issues.append(("critical", f"unreadable: {st.error or 'no provider answered'}"))
    for p in st.problems:
        issues.append((p.severity, _problem_text(p)))
    value: Decimal | None = None
    threshold: Decimal | None = None
    if st.ok and st.head_age_s is not None and st.head_age_s > st.max_head_age:
        issues.append(("critical", f"head is {st.head_age_s}s old (max {st.max_head_age}s)"))
        value, threshold = Decimal(st.head_age_s), Decimal(st.max_head_age)
    if st.ok and st.head_advanced is False:
        issues.append(("critical", f"head has not advanced for more than {st.max_head_age}s"))
    if not issues:
        return None
    sev: Severity = max((s for s, _ in issues), key=lambda s: SEVERITY_RANK[s])
    todo = ("balances on this chain are not being watched; check its nodes" if sev == "critical"
            else "the chain is still read; fix or replace that provider")
    return Finding(
        "stale_data", chain, sev,
        f"Chain {chain}: {'; '.join(text for _, text in issues)}: {todo}",
        value=value, threshold=threshold,
        details={"ok": st.ok, "error": st.error, "head_age_s": st.head_age_s,
                 "problems": [{"severity": p.severity, "provider": p.provider,
                               "message": p.message, "values": dict(p.values)}
                              for p in st.problems]},
    )


def _problem_text(p: ProviderProblem) -> str:
    text = f"{p.provider}: {p.message}"
    if p.values:
        text += " (" + ", ".join(f"{k} says {v}" for k, v in sorted(p.values.items())) + ")"
    return text


def _liabilities(inp: RuleInput) -> tuple[str | None, Finding | None]:
    st, e = inp.liabilities_status, inp.exposure
    if st is None and (e is None or e.basis == "holdings"):
        return "liabilities", None  # no ledger configured: nothing can be stale
    if st is not None and st.state != "ok":
        return "liabilities", Finding(
            "stale_data", "liabilities", "critical",
            f"The ledger is {st.state}: {st.reason or 'no reason given'}: hot_ratio and "
            "coverage cannot be computed; fix the ledger export",
            details={"state": st.state, "as_of": _iso(st)})
    if e is None:
        return None, None  # read, but which assets it lists is unknown without an exposure
    absent = [a for a, ae in e.assets.items() if inp.in_scope(a) and ae.liabilities is None]
    if not absent:
        return "liabilities", None
    return "liabilities", Finding(
        "stale_data", "liabilities", "critical",
        f"The ledger does not list {', '.join(absent)}: hot_ratio cannot be computed; "
        "add every asset in scope to the ledger export (0 is fine)",
        details={"state": "missing", "assets": absent})


def _cycles(inp: RuleInput) -> tuple[str | None, Finding | None]:
    last = inp.last_ok_cycle_at
    if last is None:
        return None, None
    age = int((inp.now - last).total_seconds())
    limit = inp.rules.stale_data.max_age
    if age <= limit:
        return "cycles", None
    return "cycles", Finding(
        "stale_data", "cycles", "critical",
        f"The last complete cycle was {age}s ago (max {limit}s): the figures are out of date; "
        "check the chains, the ledger and the prices",
        value=Decimal(age), threshold=Decimal(limit), details={"last_ok": last.isoformat()})


def _price_statuses(inp: RuleInput) -> dict[str, InputStatus]:
    """Status per `prices:ASSET` for in-scope assets (given, or read off the exposure)."""
    out: dict[str, InputStatus] = {}
    for sym in inp.assets:
        if not inp.in_scope(sym):
            continue
        st = (inp.price_status or {}).get(sym)
        if st is None and inp.exposure is not None and sym in inp.exposure.assets:
            ae = inp.exposure.assets[sym]
            st = (InputStatus("ok", None, ae.price.as_of) if ae.price_ok and ae.price
                  else InputStatus("missing", f"no price for {sym}") if ae.price is None
                  else InputStatus("stale", f"the price of {sym} is older than its max age",
                                   ae.price.as_of))
        if st is not None:
            out[f"prices:{sym}"] = st
    return out


def _iso(st: InputStatus) -> str | None:
    return None if st.as_of is None else st.as_of.isoformat()

"""YAML → validated `Settings`; every problem names the file, key path and line.

The public entry points. Validation runs in one pass and collects every
problem (errors and warnings) before deciding, so a user fixes a config in
one round instead of one error per run. The sections live in `config_*.py`:
`config_yaml` (YAML with line numbers), `config_ctx` (problem collection,
typed readers), `config_secrets` (`${NAME}`, the private-key guard),
`config_sections`, `config_chains`, `config_alerts`, `config_rules`,
`config_flows` (withdrawals, counterparties, the transfer rules' keys),
`config_sanctions`,
`config_material` (what `config_changed` diffs) and `config_starter`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .config_alerts import RULE_IDS, read_alerts, read_approvals
from .config_chains import native_assets, read_assets, read_chains, read_wallets
from .config_ctx import Ctx
from .config_flows import read_counterparties, read_withdrawals
from .config_material import config_material, diff_material
from .config_rules import PRESETS, preset_rules, read_rules
from .config_sanctions import read_sanctions
from .config_secrets import find_private_keys, substitute_env
from .config_sections import (
    read_daemon,
    read_exchange,
    read_liabilities,
    read_prices,
    read_reports,
    read_schedule,
    read_store,
)
from .config_starter import write_starter
from .config_yaml import YamlSyntaxError, parse_yaml
from .errors import ConfigError, ConfigProblem
from .settings import RuleSettings, Settings

__all__ = [
    "PRESETS",
    "check_config",
    "config_material",
    "diff_material",
    "load_config",
    "load_rules",
    "preset_rules",
    "resolve_rules",
    "write_starter",
]

TOP_KEYS = ("exchange", "store", "daemon", "schedule", "chains", "assets", "wallets", "prices",
            "liabilities", "withdrawals", "counterparties", "sanctions", "approvals", "rules",
            "alerts", "reports")


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate a config file. Raises ConfigError listing every problem."""
    settings, problems = check_config(path, env)
    if settings is None:
        raise ConfigError(problems)
    return settings


def check_config(path: str | Path, env: Mapping[str, str] | None = None
                 ) -> tuple[Settings | None, list[ConfigProblem]]:
    """Every problem and warning of a config file; Settings only when there is no error."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        return None, [ConfigProblem(file, "", f"cannot read the config file: {reason}; give "
                                    "the right path with -c/--config or AUDITOR_CONFIG, or "
                                    "run `auditor init` to write one")]
    try:
        doc = parse_yaml(text)
    except YamlSyntaxError as e:
        return None, [ConfigProblem(file, "", f"not valid YAML: {e}; fix the syntax at this "
                                    "line (indentation, a missing `:` or an unclosed quote)",
                                    e.line)]
    ctx = Ctx(file, doc.lines, Path(path).resolve().parent,
              os.environ if env is None else env)
    for key_path, message in doc.problems:
        ctx.error(key_path, message)
    settings = _build(ctx, Path(path).resolve(), doc.data)
    problems = sorted(ctx.problems, key=lambda p: p.line or 0)  # stable: file order
    return (settings if ctx.error_count() == 0 else None), problems


def _build(ctx: Ctx, source: Path, data: Any) -> Settings | None:
    if data is None:
        ctx.error("", "the config is empty; run `auditor init` to write a starter config")
        return None
    if not isinstance(data, dict):
        ctx.error("", "the config must be a mapping of sections (exchange:, chains:, …)")
        return None
    data = find_private_keys(ctx, data)  # on the text as written: env values are secrets, not keys
    data = substitute_env(ctx, data)
    m = ctx.mapping("", data, keys=TOP_KEYS, required=("exchange",))
    if m is None:
        return None
    exchange = read_exchange(ctx, m["exchange"]) if "exchange" in m else None
    store = read_store(ctx, m.get("store"))
    daemon = read_daemon(ctx, m.get("daemon"))
    schedule = read_schedule(ctx, m.get("schedule"))
    chains, chain_names = read_chains(ctx, m.get("chains"))
    assets = read_assets(ctx, m.get("assets"), chain_names)
    # Names declared but invalid are already reported: references to them are not.
    asset_names = _declared(m.get("assets"), None) | set(assets)
    wallets = read_wallets(ctx, m.get("wallets"), chain_names, assets, asset_names)
    wallet_names = _declared(m.get("wallets"), "name")
    prices = read_prices(ctx, m.get("prices"), assets, chains=chains, chain_names=chain_names,
                         fiat=exchange.fiat if exchange else None)
    liabilities = read_liabilities(ctx, m["liabilities"]) if m.get("liabilities") else None
    withdrawals = read_withdrawals(ctx, m.get("withdrawals"), assets, asset_names)
    counterparties = read_counterparties(ctx, m.get("counterparties"), chains, chain_names)
    sanctions = read_sanctions(ctx, m.get("sanctions"), chains, chain_names=chain_names,
                               store_dir=store.path.parent if store else None)
    approvals = read_approvals(ctx, m.get("approvals"), wallets, assets, wallet_names,
                               asset_names)
    poll_every = schedule.poll_every if schedule else 60
    rules = read_rules(ctx, m.get("rules"), asset_names, poll_every)
    names = {"rule": set(RULE_IDS), "chain": chain_names, "wallet": wallet_names,
             "asset": asset_names}
    alerts = read_alerts(ctx, m.get("alerts"), names)
    reports = read_reports(ctx, m.get("reports"))
    if ctx.error_count() or None in (exchange, store, daemon, schedule, prices, approvals,
                                      rules, alerts):
        return None
    warnings = tuple(str(p) for p in ctx.problems if p.severity == "warning")
    return Settings(source=source, exchange=exchange, store=store,  # type: ignore[arg-type]
                    daemon=daemon, schedule=schedule,  # type: ignore[arg-type]
                    chains=native_assets(chains, assets), assets=assets, wallets=wallets,
                    prices=prices, liabilities=liabilities,  # type: ignore[arg-type]
                    approvals=approvals, rules=rules,  # type: ignore[arg-type]
                    alerts=alerts, warnings=warnings,  # type: ignore[arg-type]
                    reports=reports, withdrawals=withdrawals, counterparties=counterparties,
                    sanctions=sanctions)


def _declared(raw: Any, key: str | None) -> set[str]:
    """Names written in a section, valid or not."""
    if isinstance(raw, dict) and key is None:
        return {str(k) for k in raw}
    if isinstance(raw, list) and key is not None:
        return {str(i[key]) for i in raw if isinstance(i, dict) and key in i}
    return set()


def resolve_rules(raw_rules: Mapping[str, Any] | None, assets: Collection[str], *,
                  poll_every: int = 60, file: str = "rules") -> RuleSettings:
    """A `rules:` mapping (preset + overrides) → RuleSettings. Raises ConfigError.

    `assets` is the configured asset symbols (or the `Settings.assets` mapping);
    `poll_every` (seconds) resolves `stale_data.max_age: 3x`.
    """
    ctx = Ctx(file, {}, Path.cwd(), os.environ)
    rules = read_rules(ctx, dict(raw_rules) if raw_rules is not None else None, assets,
                       poll_every)
    if rules is None or ctx.error_count():
        raise ConfigError(ctx.problems)
    return rules


def load_rules(path: str | Path, assets: Collection[str], *, poll_every: int = 60
               ) -> RuleSettings:
    """A rules file (for `backtest --rules FILE`): either `rules: {…}` or the mapping itself."""
    file = str(path)
    try:
        doc = parse_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError([ConfigProblem(file, "", f"cannot read the rules file: "
                                         f"{e.strerror or e}; check the path")]) from None
    except YamlSyntaxError as e:
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {e}", e.line)]) from None
    ctx = Ctx(file, doc.lines, Path(path).resolve().parent, os.environ)
    data, key_path = doc.data, ""
    if isinstance(data, dict) and set(data) == {"rules"}:
        data, key_path = data["rules"], "rules"
    rules = read_rules(ctx, data, assets, poll_every, path=key_path)
    if rules is None or ctx.error_count():
        raise ConfigError(ctx.problems)
    return rules




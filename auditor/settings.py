"""The validated, resolved configuration every part is built against.

`config.load_config()` turns YAML into these frozen dataclasses after
checking everything; code past the config never sees raw YAML. Conventions:
durations are whole seconds (`int`), percentages are fractions (`Decimal`,
"5%" → 0.05), fiat amounts and whole-unit quantities are `Decimal`,
Ethereum addresses are EIP-55 checksummed strings, paths are absolute.
Secrets (webhook secrets, URLs with credentials) are `Secret` so that they
never print by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from .model import Severity

__all__ = [
    "Secret",
    "redact_url",
    "ExchangeSettings",
    "StoreSettings",
    "DaemonSettings",
    "ScheduleSettings",
    "RpcEndpoint",
    "BackendSettings",
    "ChainSettings",
    "Deployment",
    "AssetSettings",
    "WalletSettings",
    "PriceSettings",
    "LiabilitiesSettings",
    "WithdrawalsSettings",
    "Counterparty",
    "SanctionsList",
    "SanctionsSettings",
    "LargeOutflowRule",
    "UnknownDestinationRule",
    "ApprovalItem",
    "ApprovalsSettings",
    "Threshold",
    "AssetRatioRule",
    "CoverageRule",
    "HotFloorRule",
    "DrainWindow",
    "HotDrainRule",
    "StaleDataRule",
    "RuleSettings",
    "RetrySettings",
    "ChannelSettings",
    "RouteSettings",
    "AlertSettings",
    "ReportsSettings",
    "Settings",
]


class Secret:
    """A secret string. `str()`/`repr()` never show it; `.reveal()` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """A URL reduced to scheme://host:port (URLs often carry API keys)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{host}:{port}"


@dataclass(frozen=True)
class ExchangeSettings:
    id: str
    name: str
    fiat: str = "JPY"


@dataclass(frozen=True)
class StoreSettings:
    path: Path


@dataclass(frozen=True)
class DaemonSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int | None = 9464  # None: no HTTP endpoint
    heartbeat_url: Secret | None = None
    heartbeat_timeout: int = 10


@dataclass(frozen=True)
class ScheduleSettings:
    poll_every: int = 60
    timezone: str = "UTC"
    records_cutoff: str = "00:00"  # HH:MM local time


@dataclass(frozen=True)
class RpcEndpoint:
    url: Secret  # may carry an API key: use .label in logs and alerts
    label: str  # scheme://host:port
    timeout: int = 10


@dataclass(frozen=True)
class BackendSettings:
    """One Bitcoin backend. `url`: esplora `http(s)://host:port[/path]` (the API
    root, e.g. …/api); electrum `tcp://host:port` or `ssl://host:port`; bitcoind
    `http://[user:password@]host:port`. It may carry credentials: log `label`."""

    type: Literal["esplora", "electrum", "bitcoind"]
    url: Secret
    label: str  # scheme://host:port
    timeout: int = 10
    concurrency: int = 16  # esplora: requests in flight; electrum: calls per batch
    cookie_file: Path | None = None  # bitcoind: read user:password from Core's .cookie
    ca_file: Path | None = None  # electrum ssl: a CA or self-signed certificate to trust


@dataclass(frozen=True)
class ChainSettings:
    """`type: ethereum` uses `rpc` and `multicall3`; `type: bitcoin` uses
    `network` (bitcoin | testnet | signet | regtest) and `backends`."""

    name: str
    type: Literal["ethereum", "bitcoin"]
    rpc: tuple[RpcEndpoint, ...] = ()
    confirmations: int = 12
    max_head_age: int = 120
    multicall3: str | None = "0xcA11bde05977b3631167028862bE2a173976CA11"
    native_asset: str | None = None  # the asset symbol of this chain's coin, if configured
    network: str | None = None  # bitcoin only
    backends: tuple[BackendSettings, ...] = ()  # bitcoin only


@dataclass(frozen=True)
class Deployment:
    chain: str
    token: str | None  # checksummed ERC-20 address; None for the chain's native coin
    decimals: int


@dataclass(frozen=True)
class AssetSettings:
    symbol: str
    cls: str  # "crypto" | "stablecoin" (YAML key `class`)
    decimals: int  # the asset's base: the largest decimals of its deployments
    deployments: tuple[Deployment, ...]

    def on_chain(self, chain: str) -> Deployment | None:
        for d in self.deployments:
            if d.chain == chain:
                return d
        return None


@dataclass(frozen=True)
class WalletSettings:
    name: str
    chain: str
    tier: Literal["hot", "warm", "deposit", "cold"]
    role: Literal["customer", "guarantee", "proprietary"]
    addresses: tuple[str, ...]  # ethereum: checksummed; bitcoin: as on chain (bech32 lowercase)
    assets: tuple[str, ...]  # resolved: default every asset deployed on the chain
    # bitcoin only: public descriptors as configured (xpubs already turned into
    # descriptors; checksum dropped), the gap limit, and receive indexes always scanned
    descriptors: tuple[str, ...] = ()
    gap_limit: int = 20
    issued: int = 0
    safe: bool = False  # ethereum: the wallet's one address is a Safe multisig to watch (safe_changed)


@dataclass(frozen=True)
class PriceSettings:
    """Where prices come from. `static` is used by `source: static` only;
    `chain`/`feeds`/`fiat_feed` by chainlink (checksummed addresses); `url`/
    `paths`/`as_of_path`/`timeout` by http. `check` is a second source whose
    prices must lie within `max_deviation` (a fraction) of these."""

    source: Literal["static", "chainlink", "http"]
    static: dict[str, Decimal]
    max_age: int = 600
    chain: str | None = None
    feeds: dict[str, str] = field(default_factory=dict)  # asset → asset/USD feed
    fiat_feed: str | None = None  # fiat/USD feed; None: prices in USD
    url: Secret | None = None  # may carry an API key: name it by url_label
    url_label: str | None = None  # scheme://host:port
    paths: dict[str, str] = field(default_factory=dict)  # asset → dotted JSON path
    as_of_path: str | None = None
    timeout: int = 10
    check: PriceSettings | None = None
    max_deviation: Decimal | None = None


@dataclass(frozen=True)
class LiabilitiesSettings:
    """`path` is for csv/json (for sql it is unused); `url` (an SQLAlchemy URL,
    a secret) and `query` for sql, named in messages by `url_label` (no password)."""

    source: Literal["csv", "json", "sql"]
    path: Path
    max_age: int | None = 3600
    url: Secret | None = None
    url_label: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class WithdrawalsSettings:
    """Approved customer withdrawal requests (`withdrawals`): csv/json `path` or
    sql `url` + `query`, each row id, asset, to, amount (whole units), approved_at
    [, fee]."""

    source: Literal["csv", "json", "sql"]
    path: Path | None = None
    url: Secret | None = None
    url_label: str | None = None
    query: str | None = None
    max_age: int | None = None  # the feed file/rows older than this → stale_data `withdrawals`
    # asset → whole units a sent amount may fall short of a request without a `fee`
    # (the network fee taken from the amount); missing assets: exact
    fee_tolerance: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Counterparty:
    """An allowed counterparty (`counterparties.allow[]`): outflows to it are not unknown."""

    chain: str
    address: str  # ethereum: lowercase 0x; bitcoin: as on chain
    name: str


@dataclass(frozen=True)
class SanctionsList:
    """One list: `builtin` (the shipped OFAC-derived files), a file path or a URL;
    `format` plain (one address per line) or sdn-xml (OFAC SDN advanced XML)."""

    source: str  # "builtin" | a path | a URL (may carry a key: log `label`)
    label: str  # "builtin", the file name, or scheme://host:port/…name
    format: Literal["plain", "sdn-xml"] = "plain"
    url: Secret | None = None  # for URL lists
    path: Path | None = None  # for file lists


@dataclass(frozen=True)
class SanctionsSettings:
    lists: tuple[SanctionsList, ...] = ()
    max_age: int = 7 * 86400
    cache_dir: Path | None = None  # where `sanctions update` keeps fetched lists (default: next to the store)
    oracle: str | None = None  # Chainalysis oracle address (checksummed) on `oracle_chain`
    oracle_chain: str | None = None
    # False when the config has no `sanctions` section: the builtin snapshot screens and its
    # age is not alerted (docs/configuration.md says so); an explicit section gets stale_data.
    configured: bool = True


@dataclass(frozen=True)
class LargeOutflowRule:
    max_single: Decimal  # fiat
    severity: Severity = "critical"


@dataclass(frozen=True)
class UnknownDestinationRule:
    assets: dict[str, Decimal]  # asset → whole units above which an unknown destination fires
    severity: Severity = "warning"


@dataclass(frozen=True)
class ApprovalItem:
    id: str
    wallet: str
    asset: str
    to: str  # an own wallet's name (or an address of one)
    amount: Decimal  # whole units
    not_after: datetime
    not_before: datetime | None = None
    signatures: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalsSettings:
    items: tuple[ApprovalItem, ...] = ()
    keys: tuple[str, ...] = ()
    quorum: int = 1


@dataclass(frozen=True)
class Threshold:
    """A ceiling (ratios) or floor (coverage). None: that level is off."""

    warning: Decimal | None = None
    critical: Decimal | None = None


@dataclass(frozen=True)
class AssetRatioRule:
    default: Threshold
    assets: dict[str, Threshold] = field(default_factory=dict)

    def for_asset(self, asset: str) -> Threshold:
        return self.assets.get(asset, self.default)


@dataclass(frozen=True)
class CoverageRule:
    threshold: Threshold  # coverage floors, e.g. critical 1.0 (= 100%)
    tolerance: Decimal = Decimal(0)


@dataclass(frozen=True)
class HotFloorRule:
    assets: dict[str, Decimal]  # whole units
    severity: Severity = "warning"


@dataclass(frozen=True)
class DrainWindow:
    window: int  # seconds
    drop: Decimal  # fraction of the window's high
    severity: Severity


@dataclass(frozen=True)
class HotDrainRule:
    min_value: Decimal  # fiat
    windows: tuple[DrainWindow, ...]


@dataclass(frozen=True)
class StaleDataRule:
    max_age: int  # seconds: last ok cycle older than this → critical


@dataclass(frozen=True)
class RuleSettings:
    """Rules after the preset and the overrides are merged. None: rule off."""

    preset: str
    scope_classes: frozenset[str] | None  # asset classes in hot_ratio scope; None = every asset
    hot_ratio: Threshold | None
    asset_hot_ratio: AssetRatioRule | None
    guarantee_coverage: CoverageRule | None
    reserve_coverage: CoverageRule | None
    commingling: Threshold | None  # ceiling on (O + C) / L − 1
    hot_floor: HotFloorRule | None
    hot_drain: HotDrainRule
    stale_data: StaleDataRule
    cold_outflow: bool = True
    config_changed: bool = True
    large_outflow: LargeOutflowRule | None = None
    unknown_destination: UnknownDestinationRule | None = None  # off when withdrawals is configured
    unmatched_outflow: bool = True  # applies only when withdrawals is configured
    sanctioned_counterparty: bool = True
    safe_changed: bool = True


@dataclass(frozen=True)
class RetrySettings:
    first: int = 10
    max: int = 600
    budget: int = 21600


@dataclass(frozen=True)
class ChannelSettings:
    """One `alerts.channels[]` entry. Which optional fields are set depends on
    `type` (config_channels.py checks them): `url` is the webhook/Slack/Teams
    URL, PagerDuty's events URL or Telegram's API base."""

    name: str
    type: Literal["log", "webhook", "slack", "email", "pagerduty", "telegram", "teams"]
    url: Secret | None = None
    secret: Secret | None = None
    timeout: int = 10
    retry: RetrySettings | None = None  # None: alerts.retry
    rate: Decimal | None = None  # messages per second
    routing_key: Secret | None = None  # pagerduty: the Events API v2 integration key
    bot_token: Secret | None = None  # telegram
    chat_id: str | None = None  # telegram: "-100…" or "@channel"
    smtp_host: str | None = None  # email
    smtp_port: int | None = None
    starttls: bool = False  # email: upgrade with STARTTLS (port 587)
    ssl: bool = False  # email: TLS from the first byte (port 465)
    insecure: bool = False  # email: plain SMTP to a host other than localhost, on purpose
    username: str | None = None  # email AUTH
    password: Secret | None = None
    sender: str | None = None  # email `from`
    to: tuple[str, ...] = ()  # email recipients
    ca_file: Path | None = None  # email: CA bundle to trust instead of the system's


@dataclass(frozen=True)
class RouteSettings:
    channels: tuple[str, ...]
    severity: tuple[str, ...] = ("warning", "critical")
    rule: tuple[str, ...] = ()  # empty: any
    chain: tuple[str, ...] = ()
    wallet: tuple[str, ...] = ()
    asset: tuple[str, ...] = ()
    # YAML `continue`: like Alertmanager, the first matching route takes the alert
    # unless it says `continue: true`
    continue_: bool = False
    repeat_every: int | None = None  # seconds; None: alerts.repeat_every


@dataclass(frozen=True)
class AlertSettings:
    repeat_every: int = 3600
    retry: RetrySettings = RetrySettings()
    channels: tuple[ChannelSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()


@dataclass(frozen=True)
class ReportsSettings:
    """`reports:`: the daemon writes the report of each closed period by itself."""

    every: Literal["daily", "weekly", "monthly"] = "monthly"
    formats: tuple[str, ...] = ("html", "json", "csv", "md")
    out: Path = Path("reports")  # absolute after loading (relative to the config file)


@dataclass(frozen=True)
class Settings:
    source: Path  # the config file
    exchange: ExchangeSettings
    store: StoreSettings
    daemon: DaemonSettings
    schedule: ScheduleSettings
    chains: dict[str, ChainSettings]
    assets: dict[str, AssetSettings]
    wallets: tuple[WalletSettings, ...]
    prices: PriceSettings
    liabilities: LiabilitiesSettings | None
    approvals: ApprovalsSettings
    rules: RuleSettings
    alerts: AlertSettings
    warnings: tuple[str, ...] = ()  # check-config warnings (e.g. a single provider)
    reports: ReportsSettings | None = None  # None: no scheduled reports
    withdrawals: WithdrawalsSettings | None = None
    counterparties: tuple[Counterparty, ...] = ()
    sanctions: SanctionsSettings = field(default_factory=SanctionsSettings)

    def wallet(self, name: str) -> WalletSettings:
        for w in self.wallets:
            if w.name == name:
                return w
        raise KeyError(name)

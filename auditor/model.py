"""Plain data passed between the parts. No I/O, no config parsing.

Amounts are `int` base units of the *asset's* decimals (see
`settings.AssetSettings.decimals`) unless a field says otherwise; times are
timezone-aware UTC `datetime`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

__all__ = [
    "Severity",
    "SEVERITY_RANK",
    "ViewName",
    "BlockRef",
    "ProviderProblem",
    "ChainView",
    "ChainReading",
    "WalletTotals",
    "Price",
    "Liabilities",
    "Finding",
    "Evaluation",
    "Alert",
    "Transition",
    "CycleStatus",
    "Transfer",
    "TransferBatch",
]

Severity = Literal["warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}
ViewName = Literal["settled", "watch"]
CycleStatus = Literal["ok", "partial", "failed"]


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str  # lowercase hex: 0x-prefixed on Ethereum, bare on Bitcoin (as each chain's tools show it)
    timestamp: int  # unix seconds of the block


@dataclass(frozen=True)
class ProviderProblem:
    """Something wrong with one provider (or between providers) of a chain.

    `severity` "warning": one provider failed or lags while others agree (the
    chain stays ok). "critical": providers disagree, or none answered.
    `provider` is the URL reduced to scheme://host:port (never a path or key).
    """

    severity: Severity
    provider: str
    message: str
    values: dict[str, str] = field(default_factory=dict)  # provider → value, for disagreements


@dataclass(frozen=True)
class ChainView:
    """One view (settled or watch) of one chain, as read from its providers.

    `balances[(address, asset)]` is in the *deployment's* base units on this
    chain (`decimals` of the asset deployment); the service rescales to the
    asset's decimals. Addresses are lowercase 0x hex (Ethereum).
    """

    block: BlockRef
    balances: dict[tuple[str, str], int]
    nonces: dict[str, int]


@dataclass(frozen=True)
class ChainReading:
    """The result of reading one chain once. `ok` False means unreadable:
    no view may then be used, and nothing is ever taken as a zero."""

    chain: str
    ok: bool
    settled: ChainView | None
    watch: ChainView | None
    head_timestamp: int | None = None  # unix seconds of the tip block
    problems: tuple[ProviderProblem, ...] = ()
    error: str | None = None  # why the chain is unreadable (no secrets)
    elapsed_s: float = 0.0  # timing only; never an amount
    # Chains whose wallets' addresses are discovered (Bitcoin descriptors): wallet
    # name → the addresses this reading covers (keys of the views' balances, as
    # written on chain). None: the configured addresses, lowercased (Ethereum).
    wallet_addresses: dict[str, tuple[str, ...]] | None = None
    # Discovery progress to remember: "wallet|branch descriptor" → highest used index.
    discovery: dict[str, int] = field(default_factory=dict)
    # Chains whose client reads transfers with the balances (Bitcoin): what it read
    # since the stored ingestion cursor, and the first block a reorg took away.
    transfers: TransferBatch | None = None
    transfers_rollback: int | None = None


@dataclass(frozen=True)
class WalletTotals:
    """Per wallet and asset, in the asset's base units, for one view."""

    view: ViewName
    totals: dict[tuple[str, str], int]  # (wallet name, asset symbol) → amount
    nonces: dict[str, int]  # wallet name → sum of its addresses' nonces (Ethereum)


@dataclass(frozen=True)
class Price:
    asset: str
    value: Decimal  # fiat per whole unit
    source: str  # "static", "chainlink:0x…", "http:host"
    as_of: datetime
    round_id: str | None = None


@dataclass(frozen=True)
class Liabilities:
    """What the ledger owes customers, per asset, in the asset's base units."""

    amounts: dict[str, int]
    as_of: datetime
    source: str  # e.g. "csv:liabilities.csv"


@dataclass(frozen=True)
class Finding:
    """A rule breach seen in this cycle. `value`/`threshold` are exact Decimals
    (ratios as fractions, quantities in whole units, values in fiat)."""

    rule: str
    subject: str
    severity: Severity
    summary: str
    value: Decimal | None = None
    threshold: Decimal | None = None
    details: dict[str, object] = field(default_factory=dict)  # JSON-able, no floats


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one rule in one cycle.

    `findings`: the breaches. `covered`: subjects whose inputs were complete
    this cycle, so an open state alert on such a subject without a finding
    resolves. `covers_all` True: every subject of the rule was evaluated
    (any open alert of the rule without a finding resolves). `consumed`:
    approval item ids used up by this evaluation (`cold_outflow`); the
    service stores them so that each item covers one movement.
    """

    rule: str
    findings: tuple[Finding, ...] = ()
    covered: frozenset[str] = frozenset()
    covers_all: bool = False
    consumed: frozenset[str] = frozenset()


@dataclass
class Alert:
    """An alert's current state, as kept in the store."""

    fingerprint: str
    rule: str
    subject: str
    severity: Severity
    state: Literal["firing", "resolved"]
    since: datetime  # first firing of this episode
    last_change: datetime
    last_notified: datetime | None
    value: Decimal | None = None
    threshold: Decimal | None = None
    summary: str = ""
    details: dict[str, object] = field(default_factory=dict)
    acked_by: str | None = None
    acked_at: datetime | None = None
    notified_channels: tuple[str, ...] = ()  # channels that got the firing


@dataclass(frozen=True)
class Transition:
    """One change of an alert, to be stored, logged and delivered."""

    kind: Literal["firing", "escalated", "repeat", "resolved", "outflow_reorged"]
    fingerprint: str
    rule: str
    subject: str
    severity: Severity
    at: datetime
    summary: str
    value: Decimal | None = None
    threshold: Decimal | None = None
    since: datetime | None = None
    details: dict[str, object] = field(default_factory=dict)
    seq: int | None = None  # assigned by the store


TransferKind = Literal["native", "token", "approval", "fee"]


@dataclass(frozen=True)
class Transfer:
    """One movement of value touching an own wallet, as ingested from a chain.

    `amount` is in the *asset's* base units (already rescaled from the token's
    decimals). `block` 0 with `block_hash` "" is a Bitcoin mempool transaction
    (watch view). `index` orders transfers inside a transaction and makes the
    row unique: Ethereum log index, -1 the native value of the transaction,
    -2 its gas fee, -3 − position for the value of an internal (trace) call
    (depth-first position in the call tree), tx "withdrawal:<n>" (index -1)
    for a beacon-chain withdrawal to an own address;
    Bitcoin the output index, -1 the fee. `sender`/`recipient` are addresses
    (Ethereum lowercase 0x; Bitcoin as on chain; for `approval`, recipient is
    the spender and amount the allowance). `wallet_from`/`wallet_to` name the
    own wallets on each side (None: not ours). `counterparties` lists every
    foreign address on the other side (Bitcoin: all foreign input addresses of
    an incoming transaction), which is what sanctions screening checks.
    """

    chain: str
    block: int
    block_hash: str
    tx: str
    index: int
    kind: TransferKind
    asset: str
    amount: int
    sender: str
    recipient: str
    wallet_from: str | None
    wallet_to: str | None
    counterparties: tuple[str, ...] = ()
    timestamp: int = 0  # unix seconds of the block (mempool: first seen)

    @property
    def direction(self) -> Literal["internal", "out", "in"]:
        if self.wallet_from is not None and self.wallet_to is not None:
            return "internal"
        return "out" if self.wallet_from is not None else "in"


@dataclass(frozen=True)
class TransferBatch:
    """What one ingestion step read from one chain: the transfers of blocks
    `first`..`last` (inclusive) and each of those blocks' hashes (so a later
    cycle can see a reorg), plus findings that the ingestion itself makes
    (`notes`: e.g. "no trace API: internal ETH transfers reconciled only")."""

    chain: str
    first: int
    last: int
    transfers: tuple[Transfer, ...]
    block_hashes: dict[int, str]
    notes: tuple[str, ...] = ()

"""`auditor demo`: the whole story on a local chain, offline.

A simulated exchange (hot, deposit, cold and guarantee wallets; ETH and a
USDC-like stablecoin on a local anvil node; BTC in a descriptor hot wallet, a
2-of-3 multisig cold wallet and a guarantee address on a simulated regtest
chain of real signed transactions served by a local Esplora server; a
customer ledger), all started and stopped by the demo. It polls on a simulated clock, ten minutes a cycle, through
a normal morning, an approved cold→hot top-up that pushes the hot share over
the FSA's early warning and then its limit, a sweep back to cold, and then a
Coincheck-style drain of the hot wallet at night. Every cycle runs the real
code path (chain reads, exposure, rules, alerts, store, outbox). The config and
store stay behind so `auditor status -c <out>/demo.yaml` works afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from rich.console import Console

from . import devchain
from .units import format_amount

if TYPE_CHECKING:
    from .service import PollJson

__all__ = ["run_demo"]

TOKYO = ZoneInfo("Asia/Tokyo")
ETH = 10**18
USDC = 10**6
BTC = 10**8
POLL = 600  # seconds: one cycle every ten simulated minutes
CONFIRMATIONS = 3


def _addr(label: str) -> str:
    return to_checksum_address(keccak(text=f"custody-auditor demo {label}")[12:])


HOT, COLD, GUARANTEE, FEES = _addr("hot"), _addr("cold"), _addr("guarantee"), _addr("fees")


class _LazyWallet:
    """A test wallet of `auditor.devbtc.keys`, made on first use (importing the
    simulator loads bitcoinlib, which only the demo needs)."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name
        self._w: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._w is None:
            from .devbtc import keys

            self._w = keys.wallet(self.kind, self.name)
        return getattr(self._w, attr)


BTC_HOT = _LazyWallet("wpkh", "demo-hot")
BTC_COLD = _LazyWallet("wsh-sortedmulti", "demo-cold")  # 2 of 3
BTC_GUARANTEE = _LazyWallet("pkh", "demo-guarantee")
BTC_CUSTOMER = _LazyWallet("wpkh", "demo-customer")
BTC_THIEF = _LazyWallet("wpkh", "demo-thief")
DEPOSITS = [_addr(f"deposit-{i}") for i in range(3)]
CUSTOMERS = [_addr(f"customer-{i}") for i in range(4)]
THIEF = _addr("thief")
# An address on the OFAC SDN list (in the builtin snapshot): a "customer" deposits from it.
SANCTIONED = "0x01e2919679362dFBC9ee1644Ba9C6da6D6245BB1"


class _Exchange:
    """The simulated exchange: a chain, a ledger file and a clock."""

    def __init__(self, anvil: devchain.Anvil, out: Path, start: datetime):
        self.anvil = anvil
        self.out = out
        self.now = start
        self.last_ts = int(start.timestamp())
        self.usdc = ""
        self.ledger = {"ETH": 0, "USDC": 0, "BTC": 0}
        self.requests: list[str] = []  # the back office's approved withdrawal requests (CSV rows)
        self.btc: Any = None  # devbtc.chain.SimChain, set up by run_demo

    def _next_ts(self) -> int:
        self.last_ts = max(self.last_ts + 1, int(self.now.timestamp()) - 300)
        return self.last_ts

    def send_eth(self, src: str, dst: str, wei: int) -> None:
        self.anvil.rpc("evm_setNextBlockTimestamp", hex(self._next_ts()))
        self.anvil.send_tx(src, dst, value=wei)

    def send_usdc(self, src: str, dst: str, units: int) -> None:
        self.anvil.rpc("evm_setNextBlockTimestamp", hex(self._next_ts()))
        devchain.transfer(self.anvil, self.usdc, src, dst, units)

    def settle(self) -> None:
        """Mine enough blocks that this cycle's transactions are settled, up to `now`."""
        for _ in range(CONFIRMATIONS):
            self.anvil.rpc("evm_setNextBlockTimestamp", hex(self._next_ts()))
            self.anvil.mine()
        self.last_ts = max(self.last_ts, int(self.now.timestamp()) - 1)
        self.anvil.mine(1, timestamp=self.last_ts + 1)
        self.last_ts += 1
        if self.btc is not None:  # Bitcoin too: this cycle's payments get their 3 confirmations
            self.btc.mine(CONFIRMATIONS)

    def btc_time(self) -> int:
        """Block times of the simulated Bitcoin chain follow the story's clock."""
        return int(self.now.timestamp()) - 60

    def btc_coins(self, wallet: Any) -> list[tuple[str, int, int]]:
        """(txid, vout, value) of the wallet's unspent coins on its first addresses."""
        return [(t, v, value) for branch in (0, 1) for i in range(4)
                for t, v, value, _h in self.btc.utxos(wallet.script(branch, i))]

    def pay_btc(self, wallet: Any, to: str, amount: int, change_index: int, fee: int = 10_000) -> None:
        """Spend all of `wallet`'s coins: `amount` to `to`, the rest back as change."""
        coins = self.btc_coins(wallet)
        total = sum(value for _t, _v, value in coins)
        self.btc.spend([(t, v) for t, v, _value in coins],
                       [(to, amount), (wallet.address(1, change_index), total - amount - fee)],
                       wallet.signer(), fee=fee)

    def request(self, asset: str, to: str, amount: str) -> None:
        """A customer withdrawal the back office approved (the auditor matches payouts to these)."""
        at = (self.now - timedelta(seconds=POLL)).strftime("%Y-%m-%dT%H:%M:%SZ")  # approved before paid
        self.requests.append(f"w-{len(self.requests) + 1},{asset},{to},{amount},{at}")

    def write_ledger(self) -> None:
        (self.out / "withdrawals.csv").write_text("\n".join(["id,asset,to,amount,approved_at", *self.requests])
                                                  + "\n")
        as_of = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = ["asset,amount,as_of",
                 f"ETH,{format_amount(self.ledger['ETH'], 18)},{as_of}",
                 f"USDC,{format_amount(self.ledger['USDC'], 6)},{as_of}",
                 f"BTC,{format_amount(self.ledger['BTC'], 8)},{as_of}"]
        (self.out / "liabilities.csv").write_text("\n".join(lines) + "\n")


def _config_text(out: Path, usdc: str, start: datetime, btc: dict[str, str] | None = None) -> str:
    not_after = (start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    deposits = ", ".join(f'"{a}"' for a in DEPOSITS)
    b = btc or {}
    return f"""# Written by `auditor demo`: a simulated exchange on a local anvil node and a
# simulated Bitcoin regtest chain (real signed transactions) behind a local Esplora server.
exchange: {{id: demo-ex, name: Demo Exchange, fiat: JPY}}
store: {{path: var/auditor.db}}
daemon: {{listen: "127.0.0.1:0"}}
schedule: {{poll_every: 10m, timezone: Asia/Tokyo, records_cutoff: "00:00"}}
chains:
  ethereum:
    type: ethereum
    rpc: [{{url: "{{RPC}}"}}]
    confirmations: {CONFIRMATIONS}
    max_head_age: 15m
  bitcoin:
    type: bitcoin
    network: regtest
    backends: [{{type: esplora, url: "{{ESPLORA}}"}}]
    confirmations: {CONFIRMATIONS}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
  USDC: {{class: stablecoin, chain: ethereum, token: "{usdc}", decimals: 6}}
  BTC: {{class: crypto, chain: bitcoin, decimals: 8}}
wallets:
  - {{name: eth-hot-1, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: eth-deposits, chain: ethereum, tier: deposit, role: customer, addresses: [{deposits}]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
  - {{name: eth-guarantee, chain: ethereum, tier: cold, role: guarantee, addresses: ["{GUARANTEE}"], assets: [ETH]}}
  - {{name: ops-fees, chain: ethereum, tier: hot, role: proprietary, addresses: ["{FEES}"], assets: [ETH]}}
  - {{name: btc-hot, chain: bitcoin, tier: hot, role: customer, descriptors: ["{b.get("hot", "")}"]}}
  - {{name: btc-cold, chain: bitcoin, tier: cold, role: customer,   # 2-of-3 multisig
      descriptors: ["{b.get("cold", "")}"]}}
  - {{name: btc-guarantee, chain: bitcoin, tier: cold, role: guarantee, addresses: ["{b.get("guarantee", "")}"]}}
prices:
  source: static
  static: {{ETH: "450000", USDC: "150", BTC: "15000000"}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 1h}}
withdrawals: {{source: csv, path: withdrawals.csv}}   # approved requests: payouts must match one
approvals:
  items:
    - {{id: demo-topup-1, wallet: eth-cold, asset: ETH, to: eth-hot-1, amount: "6", not_after: "{not_after}"}}
rules:
  preset: jp-fsa
  hot_drain:
    min_value: "1000000"
    windows:
      - {{window: 10m, drop: "20%", severity: critical}}
      - {{window: 2h, drop: "30%", severity: critical}}
      - {{window: 24h, drop: "50%", severity: warning}}
alerts:
  repeat_every: 1h
  channels:
    - {{name: console, type: log}}
  routes:
    - {{severity: [warning, critical], channels: [console]}}
"""


def run_demo(out: Path, *, pause: bool = True, console: Console | None = None) -> int:
    c = console or Console(highlight=False)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = 160
    out = out.resolve()
    (out / "var").mkdir(parents=True, exist_ok=True)
    for stale in (out / "var").glob("auditor.db*"):
        stale.unlink()
    start = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    c.rule("[bold]custody-auditor demo[/bold]: a day at a simulated exchange")
    c.print("Starting a local Ethereum node (anvil) and a simulated Bitcoin chain behind a local "
            f"Esplora server, and writing the exchange's config to {out}/ …")
    from .devbtc.chain import SimChain
    from .devbtc.esplora_server import EsploraServer

    with devchain.Anvil(args=["--timestamp", str(int(start.timestamp()) - 3600)]) as anvil:
        anvil.mine()
        devchain.install_multicall3(anvil)
        ex = _Exchange(anvil, out, start)
        ex.btc = SimChain(clock=ex.btc_time, faucet_coins=10)
        with EsploraServer(ex.btc) as esplora:
            _setup(ex)
            cfg = out / "demo.yaml"
            text = _config_text(out, ex.usdc, start, {"hot": BTC_HOT.descriptor, "cold": BTC_COLD.descriptor,
                                                      "guarantee": BTC_GUARANTEE.address(0, 0)})
            cfg.write_text(text.replace("{RPC}", anvil.url).replace("{ESPLORA}", esplora.url))
            story = _Story(ex, cfg, c, pause)
            story.play()
    c.rule("[bold]the end[/bold]")
    c.print(f"The config and the store are in {out}/. Try:\n"
            f"  auditor status -c {cfg}\n"
            f"  auditor alerts list --all -c {cfg}\n"
            f"  auditor transfers -c {cfg}\n"
            f"  auditor verify -c {cfg}\n"
            "(the node is gone, so `poll` would now report stale_data: that is the point.)")
    return 0


def _setup(ex: _Exchange) -> None:
    a = ex.anvil
    ex.usdc = to_checksum_address(devchain.deploy_erc20(a, "USD Coin (demo)", "USDC", 6))
    balances = {HOT: 10 * ETH, COLD: int(Decimal("388.5") * ETH), GUARANTEE: 25 * ETH, FEES: 3 * ETH}
    balances.update({d: 2 * ETH // 3 for d in DEPOSITS})
    balances.update({cu: 50 * ETH for cu in CUSTOMERS})
    a.set_balances({k: v for k, v in balances.items()})
    devchain.mint(a, ex.usdc, HOT, 100_000 * USDC)
    devchain.mint(a, ex.usdc, COLD, 1_900_000 * USDC)
    ex.btc.pay([(BTC_HOT.address(0, 0), 20_000_000), (BTC_HOT.address(0, 1), 13_000_000),
                (BTC_COLD.address(0, 0), 5 * BTC), (BTC_COLD.address(1, 0), 67_000_000),
                (BTC_GUARANTEE.address(0, 0), 1 * BTC)])
    ex.ledger = {"ETH": 400 * ETH, "USDC": 2_000_000 * USDC, "BTC": 6 * BTC}
    ex.settle()


class _Story:
    def __init__(self, ex: _Exchange, cfg: Path, c: Console, pause: bool):
        from .config import load_config
        from .store import Store

        self.ex, self.cfg, self.c, self.pause = ex, cfg, c, pause
        self.settings = load_config(cfg)
        self.store = Store.open(self.settings.store.path)

    def act(self, title: str, text: str) -> None:
        at = (self.ex.now + timedelta(seconds=POLL)).astimezone(TOKYO)
        self.c.print()
        self.c.rule(f"[bold cyan]{at:%H:%M}  {title}[/bold cyan]")
        self.c.print(text)
        if self.pause:
            time.sleep(1.0)

    def cycle(self, what: str, actions: Callable[[], None] | None = None, show_table: bool = False,
              quiet: bool = False) -> PollJson:
        from .notify import make_notifier
        from .outbox import deliver_pending
        from .service import run_cycle
        from .views import alerts_table, exposure_table

        self.ex.now += timedelta(seconds=POLL)
        if actions:
            actions()
        self.ex.settle()
        self.ex.write_ledger()
        outcome = run_cycle(self.settings, self.store, now=self.ex.now, deadline_s=30)
        notifiers = {ch.name: make_notifier(ch) for ch in self.settings.alerts.channels}
        deliver_pending(self.store, notifiers, self.settings.alerts, self.settings.exchange.id, now=self.ex.now)
        poll = outcome.poll
        ratio = (poll.get("exposure") or {}).get("hot_ratio")
        pct = "n/a" if ratio is None else f"{Decimal(str(ratio)) * 100:.2f}%"
        if quiet and not outcome.transitions:
            return poll
        self.c.print(f"[dim]{self.ex.now.astimezone(TOKYO):%a %H:%M}[/dim] cycle {poll['cycle']:>2} "
                     f"[{poll['status']}] hot ratio {pct:>7}  {what}")
        for t in outcome.transitions:
            color = "red" if t.severity == "critical" and t.kind != "resolved" else (
                "green" if t.kind == "resolved" else "yellow")
            self.c.print(f"      [{color}]{t.kind:>9} {t.severity:<8} {t.rule} {t.subject}[/{color}]: {t.summary}")
        if show_table:
            self.c.print(exposure_table(poll.get("exposure")))
            firing = [a for a in poll["alerts"] if a["state"] == "firing"]
            if firing:
                self.c.print(alerts_table(firing, "Firing alerts"))
        return poll

    def fast_forward(self, until_hour: int) -> None:
        """Quiet polls until `until_hour` local time (printed as one line)."""
        n = 0
        while (self.ex.now + timedelta(seconds=POLL)).astimezone(TOKYO).hour != until_hour:
            self.cycle("quiet", quiet=True)
            n += 1
        self.c.print(f"[dim]… {n} quiet polls through the afternoon and the evening …[/dim]")

    def play(self) -> None:
        ex = self.ex
        self.act("A normal morning",
                 "Customers deposit and withdraw; deposits are swept into the hot wallet.\n"
                 "Sweeps between own wallets are internal: they never look like a drain.")
        self.cycle("opening balances", show_table=True)

        def deposits() -> None:
            ex.send_eth(CUSTOMERS[0], DEPOSITS[0], 1 * ETH)
            ex.ledger["ETH"] += 1 * ETH

        self.cycle("a customer deposits 1 ETH", deposits)

        def sweep_and_withdraw() -> None:
            ex.send_eth(DEPOSITS[0], HOT, 1 * ETH)
            ex.request("ETH", CUSTOMERS[1], "0.8")
            ex.send_eth(HOT, CUSTOMERS[1], int(Decimal("0.8") * ETH))
            ex.ledger["ETH"] -= int(Decimal("0.8") * ETH)
            # BTC: one payment spends both hot coins; the change goes to the change branch
            ex.request("BTC", BTC_CUSTOMER.address(0, 0), "0.05")
            ex.pay_btc(BTC_HOT, BTC_CUSTOMER.address(0, 0), 5_000_000, change_index=0, fee=10_000)
            ex.ledger["BTC"] -= 5_000_000 + 10_000  # the customer pays the network fee

        self.cycle("deposit swept to hot; requested withdrawals of 0.8 ETH and 0.05 BTC (with change)",
                   sweep_and_withdraw)
        self.cycle("quiet")

        self.act("An approved top-up from cold storage",
                 "Treasury moves 6 ETH from cold to hot under approval `demo-topup-1`\n"
                 "(cold_outflow stays quiet: the movement matches the approval). The hot\n"
                 "share climbs past the FSA's 4% early warning, then deposits push it past 5%.")
        self.cycle("6 ETH cold → hot (approved)", lambda: ex.send_eth(COLD, HOT, 6 * ETH))

        def busy() -> None:
            for cu, d in zip(CUSTOMERS[:3], DEPOSITS, strict=True):
                ex.send_eth(cu, d, 2 * ETH)
                ex.ledger["ETH"] += 2 * ETH

        self.cycle("6 ETH of new deposits", busy, show_table=True)

        self.act("Back under the limit",
                 "Treasury sweeps the excess back to cold storage. The ratio alert resolves by\n"
                 "itself; the 50% fall of the hot wallet is internal and does not page anyone.")
        self.cycle("12 ETH hot → cold (sweep)", lambda: ex.send_eth(HOT, COLD, 12 * ETH))
        self.cycle("quiet")

        self.act("A deposit from a sanctioned address",
                 "A deposit arrives from an address on the OFAC SDN list. Since March 2022 the\n"
                 "FSA expects exchanges to freeze it, block further transfers and report it:\n"
                 "sanctioned_counterparty pages at once (critical), naming the list.")

        def tainted() -> None:
            ex.anvil.set_balance(SANCTIONED, 5 * ETH)
            ex.send_eth(SANCTIONED, DEPOSITS[2], 1 * ETH)
            ex.ledger["ETH"] += 1 * ETH

        self.cycle("1 ETH deposited from an OFAC-listed address", tainted)
        self._resolve("sanctioned_counterparty", "funds frozen; reported to the FSA and the MoF (case SC-2026-7)")

        self.fast_forward(until_hour=2)
        self.act("A Coincheck-style drain",
                 "At night, someone with the hot wallet's key empties it within one poll.\n"
                 "hot_drain pages at once, per asset, and unmatched_outflow names each\n"
                 "transaction and destination no withdrawal request covers. The regulator's arithmetic does not\n"
                 "hide the loss: coins owed but no longer held fail reserve_coverage, and\n"
                 "N = max(O, L − C) keeps counting them as online customer crypto.")

        def drain() -> None:
            bal = int(ex.anvil.rpc("eth_getBalance", HOT, "latest"), 16)
            ex.send_eth(HOT, THIEF, bal * 95 // 100)
            ex.send_usdc(HOT, THIEF, 95_000 * USDC)
            btc = sum(v for _t, _i, v in ex.btc_coins(BTC_HOT))
            ex.pay_btc(BTC_HOT, BTC_THIEF.address(0, 0), btc * 95 // 100, change_index=1)

        self.cycle("hot wallets (ETH, USDC, BTC) drained to unknown addresses", drain, show_table=True)
        self.cycle("next poll: event alerts stay open until a person resolves them")

        self.act("A person takes over",
                 "The security team acknowledges the incident and resolves the drain alerts\n"
                 "with a reason (written to the hash-chained audit log and announced).")
        for rule in ("hot_drain", "unmatched_outflow"):
            self._resolve(rule, "confirmed theft; incident IR-2026-001 opened, keys rotated")
        res = self.store.verify()
        self.c.print(f"audit log: {res.records} records, hash chain {'intact' if res.ok else 'BROKEN'}, "
                     f"head {res.head[:16]}…")
        self.store.close()

    def _resolve(self, rule: str, reason: str) -> None:
        from .alerts_ops import resolve_by_hand

        for a in self.store.list_alerts():
            if a.rule == rule and a.state == "firing":
                seq = resolve_by_hand(self.settings, self.store, a.fingerprint, "demo-operator", reason,
                                      self.ex.now + timedelta(minutes=5))
                self.c.print(f"      [green]resolved[/green] {a.rule} {a.subject} by demo-operator "
                             f"(audit seq {seq})")

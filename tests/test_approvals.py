"""Signed approvals: canonical bytes, SSHSIG verification with real `ssh-keygen`,
quorum by distinct keys, forged approvals not covering a cold outflow, and
`auditor approvals verify`."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor import rules
from auditor.approvals import (
    canonical_item,
    check_item,
    key_problem,
    valid_approvals,
    verify_file,
    verify_sshsig,
)
from auditor.cli import cli
from auditor.config import check_config, load_config
from auditor.errors import ConfigError
from auditor.model import BlockRef, ChainReading, ChainView
from auditor.service import run_cycle
from auditor.settings import (
    ApprovalItem,
    ApprovalsSettings,
    AssetSettings,
    Deployment,
    DrainWindow,
    HotDrainRule,
    RuleSettings,
    StaleDataRule,
    WalletSettings,
)
from auditor.store import Store

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None, reason="ssh-keygen (OpenSSH client) is not installed: cannot make "
    "real SSH signatures; install openssh-client")

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ETH = 10**18
COLD = "0x" + "22" * 20
HOT = "0x" + "11" * 20
ITEM = {"id": "2026-12-01-a", "wallet": "eth-cold", "asset": "ETH", "to": "eth-hot",
        "amount": "10", "not_after": "2026-11-25T00:00:00Z"}


def approval(**over: Any) -> ApprovalItem:
    base: dict[str, Any] = {"id": "2026-12-01-a", "wallet": "eth-cold", "asset": "ETH",
                            "to": "eth-hot", "amount": Decimal("10"),
                            "not_after": datetime(2026, 11, 25, tzinfo=UTC)}
    return ApprovalItem(**(base | over))


@dataclass(frozen=True)
class Key:
    path: Path
    public: str  # the id_ed25519.pub line


Signer = Callable[..., str]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    """Three real ed25519 keys: two signers and an outsider."""
    if SSH_KEYGEN is None:
        pytest.skip("ssh-keygen (OpenSSH client) is not installed; install openssh-client")
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("ciso", "cfo", "mallory"):
        path = d / name
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example",
                        "-f", str(path)], check=True)
        out[name] = Key(path, path.with_suffix(".pub").read_text().strip())
    return out


@pytest.fixture
def sign(tmp_path: Path) -> Signer:
    """Sign bytes the way a signer does: `ssh-keygen -Y sign -n NAMESPACE FILE`."""
    counter = iter(range(1000))

    def run(key: Key, data: bytes, namespace: str = "auditor-approval", *opts: str) -> str:
        assert SSH_KEYGEN is not None
        f = tmp_path / f"msg-{next(counter)}.json"
        f.write_bytes(data)
        subprocess.run([SSH_KEYGEN, "-Y", "sign", "-f", str(key.path), "-n", namespace, *opts,
                        str(f)], check=True, capture_output=True)
        return f.with_name(f.name + ".sig").read_text()

    return run


# --- canonical form -------------------------------------------------------------


def test_canonical_item_is_sorted_compact_json_of_strings() -> None:
    assert canonical_item(approval()) == (
        b'{"amount":"10","asset":"ETH","id":"2026-12-01-a","not_after":"2026-11-25T00:00:00Z",'
        b'"to":"eth-hot","wallet":"eth-cold"}')


def test_canonical_item_of_a_written_item_equals_that_of_the_parsed_item() -> None:
    written = ITEM | {"amount": "10.000", "not_after": "2026-11-25T09:00:00+09:00",
                      "signatures": ["ignored"]}
    assert canonical_item(written) == canonical_item(approval())


def test_canonical_item_has_not_before_only_when_set() -> None:
    start = datetime(2026, 11, 24, 12, 30, tzinfo=timezone(timedelta(hours=9)))
    assert b"not_before" not in canonical_item(approval())
    assert b'"not_before":"2026-11-24T03:30:00Z"' in canonical_item(approval(not_before=start))


@pytest.mark.parametrize(("over", "why"), [
    ({"not_after": "2026-11-25T00:00:00.5Z"}, "whole seconds"),
    ({"not_after": "2026-11-25T00:00:00"}, "time zone"),
    ({"amount": "1e3"}, "decimal"),
    ({"memo": "x"}, "unknown key"),
])
def test_canonical_item_refuses_what_it_cannot_write_exactly(over: dict[str, str],
                                                             why: str) -> None:
    with pytest.raises(ValueError, match=why):
        canonical_item(ITEM | over)


# --- SSHSIG ----------------------------------------------------------------------


@needs_ssh_keygen
def test_valid_signature_returns_the_signers_name(keys: dict[str, Key], sign: Signer) -> None:
    msg = canonical_item(approval())
    assert verify_sshsig(sign(keys["ciso"], msg), msg, [keys["ciso"].public]) == "ciso@example"


@needs_ssh_keygen
def test_sha256_signature_is_accepted(keys: dict[str, Key], sign: Signer) -> None:
    msg = canonical_item(approval())
    sig = sign(keys["ciso"], msg, "auditor-approval", "-O", "hashalg=sha256")
    assert verify_sshsig(sig, msg, [keys["cfo"].public, keys["ciso"].public]) == "ciso@example"


@needs_ssh_keygen
def test_signature_for_another_namespace_is_rejected(keys: dict[str, Key], sign: Signer) -> None:
    msg = canonical_item(approval())
    sig = sign(keys["ciso"], msg, "file")
    assert verify_sshsig(sig, msg, [keys["ciso"].public]) is None
    report = check_item(approval(signatures=(sig,)), [keys["ciso"].public], 1)
    assert not report.ok and "namespace 'file'" in report.problem


@needs_ssh_keygen
def test_item_changed_after_signing_is_rejected(keys: dict[str, Key], sign: Signer) -> None:
    sig = sign(keys["ciso"], canonical_item(approval()))
    tampered = approval(amount=Decimal("11"), signatures=(sig,))
    assert verify_sshsig(sig, canonical_item(tampered), [keys["ciso"].public]) is None
    report = check_item(tampered, [keys["ciso"].public], 1)
    assert not report.ok and report.signers == ()
    assert "does not match the item" in report.problem


@needs_ssh_keygen
def test_signature_by_a_key_not_in_keys_is_rejected(keys: dict[str, Key], sign: Signer) -> None:
    msg = canonical_item(approval())
    sig = sign(keys["mallory"], msg)
    assert verify_sshsig(sig, msg, [keys["ciso"].public, keys["cfo"].public]) is None
    report = check_item(approval(signatures=(sig,)), [keys["ciso"].public], 1)
    assert "signature 1 by a key not in approvals.keys (SHA256:" in report.problem


def _garbage(armored: str) -> list[object]:
    lines = armored.strip().splitlines()
    body = "".join(lines[1:-1])
    blob = bytearray(base64.b64decode(body))
    blob[-5] ^= 0x01  # one bit of the signature itself
    flipped = "\n".join([lines[0], base64.b64encode(bytes(blob)).decode(), lines[-1]])
    return [
        "", "garbage", None, 42, lines[0],  # no END line
        "\n".join([lines[0], body[: len(body) // 2], lines[-1]]),  # truncated blob
        "\n".join([lines[0], body[:-4] + "!!!!", lines[-1]]),  # not base64
        "\n".join([lines[0], base64.b64encode(b"SSHSIG\x00\x00\x00\x01").decode(), lines[-1]]),
        flipped,
        armored + "\n" + armored,  # two signatures glued together
    ]


@needs_ssh_keygen
def test_truncated_or_garbage_armor_is_rejected_without_raising(keys: dict[str, Key],
                                                                sign: Signer) -> None:
    msg = canonical_item(approval())
    good = sign(keys["ciso"], msg)
    for bad in _garbage(good):
        assert verify_sshsig(bad, msg, [keys["ciso"].public]) is None, bad  # type: ignore[arg-type]
    assert verify_sshsig(good, msg, ["not a key", "ssh-ed25519 AAAA"]) is None


@needs_ssh_keygen
def test_signature_folded_into_one_line_by_yaml_still_verifies(keys: dict[str, Key],
                                                               sign: Signer) -> None:
    msg = canonical_item(approval())
    folded = " ".join(sign(keys["ciso"], msg).split("\n"))
    assert verify_sshsig(folded, msg, [keys["ciso"].public]) == "ciso@example"


def test_key_problem_names_what_is_wrong() -> None:
    good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"
    assert key_problem(good) is None
    assert "only ssh-ed25519" in (key_problem("ssh-rsa AAAAB3NzaC1yc2E me") or "")
    assert "cut or changed" in (key_problem(good[:40] + " x") or "")
    assert "expected `ssh-ed25519 <base64> [name]`" in (key_problem("ssh-ed25519") or "")


# --- quorum ----------------------------------------------------------------------


@needs_ssh_keygen
def test_quorum_of_two_is_not_met_by_two_signatures_of_the_same_key(keys: dict[str, Key],
                                                                    sign: Signer) -> None:
    msg = canonical_item(approval())
    twice = approval(signatures=(sign(keys["ciso"], msg), sign(keys["ciso"], msg)))
    settings = ApprovalsSettings((twice,), (keys["ciso"].public, keys["cfo"].public), 2)
    kept, problems = valid_approvals(settings)
    assert kept.items == ()
    assert problems == [("approval 2026-12-01-a: 1 valid signature of 2 needed (ciso@example); "
                         "signature 2: a second signature by ciso@example (each key counts once)")]


@needs_ssh_keygen
def test_quorum_of_two_is_met_by_two_distinct_keys(keys: dict[str, Key], sign: Signer) -> None:
    msg = canonical_item(approval())
    both = approval(signatures=(sign(keys["cfo"], msg), sign(keys["ciso"], msg)))
    settings = ApprovalsSettings((both,), (keys["ciso"].public, keys["cfo"].public), 2)
    kept, problems = valid_approvals(settings)
    assert kept.items == (both,) and problems == []
    assert check_item(both, settings.keys, 2).signers == ("cfo@example", "ciso@example")


def test_without_keys_items_count_unsigned() -> None:
    settings = ApprovalsSettings((approval(),), (), 1)
    assert valid_approvals(settings) == (settings, [])


# --- cold_outflow ---------------------------------------------------------------

ASSETS = {"ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),))}
WALLETS = (WalletSettings("eth-hot", "ethereum", "hot", "customer", (HOT,), ("ETH",)),
           WalletSettings("eth-cold", "ethereum", "cold", "customer", (COLD,), ("ETH",)))
PREV = {("eth-cold", "ETH"): 100 * ETH, ("eth-hot", "ETH"): 5 * ETH}
MOVED = {("eth-cold", "ETH"): 90 * ETH - 10**15, ("eth-hot", "ETH"): 15 * ETH}  # 10 ETH + fee


def _cold_outflow(approvals: ApprovalsSettings) -> set[str]:
    rule_settings = RuleSettings(
        preset="none", scope_classes=None, hot_ratio=None, asset_hot_ratio=None,
        guarantee_coverage=None, reserve_coverage=None, commingling=None, hot_floor=None,
        hot_drain=HotDrainRule(Decimal(1000000), (DrainWindow(600, Decimal("0.2"), "critical"),)),
        stale_data=StaleDataRule(180))
    ev = rules.cold_outflow(rules.RuleInput(
        now=NOW, exchange_id="ex", rules=rule_settings, wallets=WALLETS, assets=ASSETS,
        watch_now=MOVED, prev_watch=PREV, prev_nonces={"eth-cold": 5}, nonces_now={"eth-cold": 6},
        approvals=valid_approvals(approvals)[0]))
    return {f.subject for f in ev.findings}


@needs_ssh_keygen
def test_forged_approval_does_not_cover_a_cold_outflow_and_a_signed_one_does(
        keys: dict[str, Key], sign: Signer) -> None:
    signed = sign(keys["ciso"], canonical_item(approval()))
    other = sign(keys["ciso"], canonical_item(approval(amount=Decimal("1"))))  # another item's
    for forged in (sign(keys["mallory"], canonical_item(approval())), other, "-----BEGIN SSH"):
        assert _cold_outflow(ApprovalsSettings((approval(signatures=(forged,)),),
                                               (keys["ciso"].public,), 1)) == {"eth-cold/ETH"}
    assert _cold_outflow(ApprovalsSettings((approval(signatures=(signed,)),),
                                           (keys["ciso"].public,), 1)) == set()


# --- config, service and CLI -----------------------------------------------------


def _config(d: Path, keys: Sequence[Key], signatures: Sequence[str] = (), quorum: int = 1,
            extra_keys: Sequence[str] = ()) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "liabilities.csv").write_text("asset,amount\nETH,100\n")
    lines = [json.dumps(k.public) for k in keys] + [json.dumps(k) for k in extra_keys]
    item = json.dumps(ITEM | {"signatures": list(signatures)})
    cfg = d / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: appr-ex}}
store: {{path: var/a.db}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 2}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
prices: {{source: static, static: {{ETH: "100"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
approvals:
  items: [{item}]
  keys: [{", ".join(lines)}]
  quorum: {quorum}
rules: {{preset: none}}
alerts:
  channels: [{{name: console, type: log}}]
  routes: [{{severity: [critical], channels: [console]}}]
""")
    return cfg


@needs_ssh_keygen
def test_check_config_warns_about_an_item_without_a_quorum(keys: dict[str, Key], sign: Signer,
                                                          tmp_path: Path) -> None:
    forged = sign(keys["mallory"], canonical_item(ITEM))
    settings, problems = check_config(_config(tmp_path, [keys["ciso"]], [forged]), env={})
    assert settings is not None  # a warning, not an error
    (p,) = [p for p in problems if p.path == "approvals.items[0].signatures"]
    assert p.severity == "warning" and 'approval "2026-12-01-a"' in p.message
    assert "0 valid signatures of 1 needed" in p.message and "still fires cold_outflow" in p.message


@needs_ssh_keygen
def test_check_config_is_quiet_about_a_properly_signed_item(keys: dict[str, Key], sign: Signer,
                                                            tmp_path: Path) -> None:
    sig = sign(keys["ciso"], canonical_item(ITEM))
    _, problems = check_config(_config(tmp_path, [keys["ciso"]], [sig]), env={})
    assert [p for p in problems if p.path.startswith("approvals")] == []


@needs_ssh_keygen
def test_bad_or_duplicate_keys_are_config_errors(keys: dict[str, Key], tmp_path: Path) -> None:
    cut = keys["cfo"].public[:40]
    cfg = _config(tmp_path, [keys["ciso"], keys["ciso"]],
                  extra_keys=["ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob", cut])
    settings, problems = check_config(cfg, env={})
    errors = {p.path: p.message for p in problems if p.severity == "error"}
    assert settings is None
    assert "each signer needs a key of their own" in errors["approvals.keys[1]"]
    assert "only ssh-ed25519 keys are accepted" in errors["approvals.keys[2]"]
    assert "cut or changed" in errors["approvals.keys[3]"]
    assert "id_ed25519.pub" in errors["approvals.keys[3]"]


class _Chain:
    """A ChainClient whose balances and nonces the test sets."""

    def __init__(self, balances: Mapping[str, int], nonces: Mapping[str, int]):
        self.balances, self.nonces = balances, nonces

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        bal = {(a.lower(), "ETH"): v for a, v in self.balances.items()}
        nonces = {a.lower(): n for a, n in self.nonces.items()}
        ts = int(NOW.timestamp())
        view = ChainView(BlockRef(100, "0x" + "bb" * 32, ts), bal, nonces)
        return ChainReading("ethereum", True, view, view, head_timestamp=ts)

    def close(self) -> None:
        pass


def _cycles_fire_cold_outflow(cfg: Path) -> bool:
    settings = load_config(cfg, env={})
    store = Store.open(settings.store.path)
    try:
        before = {"ethereum": _Chain({COLD: 100 * ETH, HOT: 5 * ETH}, {COLD: 5, HOT: 0})}
        run_cycle(settings, store, now=NOW, clients=before)  # type: ignore[arg-type]
        after = {"ethereum": _Chain({COLD: 90 * ETH - 10**15, HOT: 15 * ETH}, {COLD: 6, HOT: 0})}
        out = run_cycle(settings, store, now=NOW + timedelta(minutes=1),
                        clients=after)  # type: ignore[arg-type]
    finally:
        store.close()
    return any(a["rule"] == "cold_outflow" for a in out.poll["alerts"])


@needs_ssh_keygen
def test_service_fires_cold_outflow_for_a_forged_approval_not_for_a_signed_one(
        keys: dict[str, Key], sign: Signer, tmp_path: Path) -> None:
    forged = sign(keys["mallory"], canonical_item(ITEM))
    signed = sign(keys["ciso"], canonical_item(ITEM))
    assert _cycles_fire_cold_outflow(_config(tmp_path / "forged", [keys["ciso"]], [forged]))
    assert not _cycles_fire_cold_outflow(_config(tmp_path / "signed", [keys["ciso"]], [signed]))


def _verify(cfg: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["approvals", "verify", *args, "-c", str(cfg)])


@needs_ssh_keygen
def test_cli_show_canonical_then_ssh_keygen_sign_then_verify(keys: dict[str, Key], sign: Signer,
                                                             tmp_path: Path) -> None:
    cfg = _config(tmp_path, [keys["ciso"], keys["cfo"]], quorum=2)
    item = tmp_path / "item.yaml"
    item.write_text("items:\n  - " + json.dumps(ITEM) + "\n")
    shown = _verify(cfg, str(item), "--show-canonical")
    assert shown.exit_code == 0 and shown.stdout_bytes == canonical_item(ITEM)
    sigs = [sign(keys[k], shown.stdout_bytes) for k in ("ciso", "cfo")]
    item.write_text("- " + json.dumps(ITEM | {"signatures": sigs}) + "\n")
    ok = _verify(cfg, str(item))
    assert ok.exit_code == 0, ok.output
    assert "2026-12-01-a" in ok.stdout and "ciso@example, cfo@example" in ok.stdout
    half = tmp_path / "half.json"
    half.write_text(json.dumps({"items": [ITEM | {"signatures": sigs[:1]}]}))
    bad = _verify(cfg, str(half), "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout) == [{
        "id": "2026-12-01-a", "ok": False, "signers": ["ciso@example"],
        "problem": "1 valid signature of 2 needed (ciso@example)"}]


@needs_ssh_keygen
def test_cli_reports_an_unreadable_item_as_not_ok(keys: dict[str, Key], tmp_path: Path) -> None:
    f = tmp_path / "items.yaml"
    f.write_text("- " + json.dumps(ITEM | {"wallet": "eth-hot"}) + "\n")
    res = _verify(_config(tmp_path, [keys["ciso"]]), str(f), "--json")
    assert res.exit_code == 1
    (row,) = json.loads(res.stdout)
    assert row["ok"] is False and "not cold" in row["problem"]


@needs_ssh_keygen
def test_cli_usage_and_config_errors_exit_2(keys: dict[str, Key], tmp_path: Path) -> None:
    cfg = _config(tmp_path, [keys["ciso"]])
    two = tmp_path / "two.yaml"
    two.write_text("- " + json.dumps(ITEM) + "\n- " + json.dumps(ITEM | {"id": "b"}) + "\n")
    wrong_shape = tmp_path / "shape.yaml"
    wrong_shape.write_text("approvals: {items: []}\n")
    assert _verify(cfg, str(tmp_path / "missing.yaml")).exit_code == 2
    assert _verify(cfg, str(wrong_shape)).exit_code == 2
    assert _verify(cfg, str(two), "--show-canonical").exit_code == 2
    assert _verify(tmp_path / "no-config.yaml", str(two)).exit_code == 2
    unsigned = _config(tmp_path / "unsigned", [])
    unsigned.write_text(unsigned.read_text().replace("  keys: []\n  quorum: 1\n", ""))
    no_keys = _verify(unsigned, str(two))
    assert no_keys.exit_code == 2 and "add approvals.keys" in no_keys.output
    with pytest.raises(ConfigError, match="holds no items"):
        verify_file(_empty(tmp_path), ApprovalsSettings(), WALLETS, ASSETS)


def _empty(d: Path) -> Path:
    f = d / "empty.yaml"
    f.write_text("items: []\n")
    return f


@needs_ssh_keygen
def test_with_keys_an_unsigned_item_never_counts_even_at_quorum_zero(keys: dict[str, Key]) -> None:
    kept, problems = valid_approvals(ApprovalsSettings((approval(),), (keys["ciso"].public,), 0))
    assert kept.items == () and problems == ["approval 2026-12-01-a: 0 valid signatures of 1 "
                                             "needed"]

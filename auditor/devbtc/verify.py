"""An independent check that a transaction input really unlocks its coin.

bitcoinlib's `Transaction.verify()` recomputes the signature hash with the
same code that signed, so a bug there would pass it. This module checks the
spend the way a node does for the script kinds the simulator spends: the
scriptSig/witness shape against the *coin's* scriptPubKey (pubkey hash, P2SH
redeem script hash, P2WSH witness script hash), strict DER low-S signatures
with SIGHASH_ALL, and ECDSA over the legacy or BIP 143 signature hash
(fastecdsa, not bitcoinlib's signing path).
"""

from __future__ import annotations

import hashlib
import struct

from fastecdsa import ecdsa
from fastecdsa.curve import secp256k1
from fastecdsa.encoding.sec1 import SEC1Encoder

from .codec import ParsedTx, hash160, serialize_tx, sha256d, varint

__all__ = ["check_input", "InvalidSpend"]


class InvalidSpend(ValueError):
    pass


def check_input(tx: ParsedTx, i: int, prev_script: bytes, prev_value: int) -> None:
    """Raise InvalidSpend unless input `i` of `tx` unlocks `prev_script` (value `prev_value`)."""
    inp = tx.inputs[i]
    if len(prev_script) == 25 and prev_script[:3] == b"\x76\xa9\x14":
        sig, pub = _two_pushes(inp.script_sig)
        _expect(not inp.witness and hash160(pub) == prev_script[3:23], "p2pkh: pubkey does not match")
        _check_sig(sig, pub, _legacy_sighash(tx, i, prev_script))
    elif len(prev_script) == 23 and prev_script[:2] == b"\xa9\x14":
        redeem = inp.script_sig[1:]
        _expect(inp.script_sig[:1] == bytes([len(redeem)]) and hash160(redeem) == prev_script[2:22],
                "p2sh: redeem script does not match")
        _expect(len(redeem) == 22 and redeem[:2] == b"\x00\x14", "p2sh: only p2sh-p2wpkh is checked")
        _check_wpkh(tx, i, redeem[2:], prev_value)
    elif len(prev_script) == 22 and prev_script[:2] == b"\x00\x14":
        _expect(not inp.script_sig, "p2wpkh: scriptSig must be empty")
        _check_wpkh(tx, i, prev_script[2:], prev_value)
    elif len(prev_script) == 34 and prev_script[:2] == b"\x00\x20":
        _expect(not inp.script_sig, "p2wsh: scriptSig must be empty")
        _check_wsh_multisig(tx, i, prev_script[2:], prev_value)
    else:
        raise InvalidSpend(f"input {i}: script kind not checked: {prev_script.hex()}")


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise InvalidSpend(what)


def _two_pushes(script: bytes) -> tuple[bytes, bytes]:
    _expect(len(script) > 2 and script[0] <= 75, "scriptSig: expected <sig> <pubkey>")
    n = script[0]
    sig, rest = script[1:1 + n], script[1 + n:]
    _expect(len(rest) == 1 + rest[0], "scriptSig: expected <sig> <pubkey>")
    return sig, rest[1:]


def _check_wpkh(tx: ParsedTx, i: int, program: bytes, value: int) -> None:
    w = tx.inputs[i].witness
    _expect(len(w) == 2 and hash160(w[1]) == program, "p2wpkh: witness pubkey does not match")
    _check_sig(w[0], w[1], _bip143_sighash(tx, i, b"\x76\xa9\x14" + program + b"\x88\xac", value))


def _check_wsh_multisig(tx: ParsedTx, i: int, program: bytes, value: int) -> None:
    w = tx.inputs[i].witness
    _expect(len(w) >= 3 and hashlib.sha256(w[-1]).digest() == program, "p2wsh: witness script does not match")
    ws = w[-1]
    m, n = ws[0] - 0x50, ws[-2] - 0x50
    _expect(ws[-1] == 0xAE and 1 <= m <= n <= 16 and len(ws) == 3 + 34 * n, "p2wsh: not an m-of-n multisig")
    keys = [ws[2 + 34 * k:35 + 34 * k] for k in range(n)]
    _expect(w[0] == b"" and len(w) == m + 2, "p2wsh: expected <empty> <m signatures> <script>")
    digest = _bip143_sighash(tx, i, ws, value)
    k = 0
    for sig in w[1:-1]:  # OP_CHECKMULTISIG: signatures in key order
        while k < n and not _sig_ok(sig, keys[k], digest):
            k += 1
        _expect(k < n, "p2wsh: a signature matches no remaining key")
        k += 1


def _check_sig(sig: bytes, pub: bytes, digest: bytes) -> None:
    _expect(_sig_ok(sig, pub, digest), "signature does not verify")


def _sig_ok(sig: bytes, pub: bytes, digest: bytes) -> bool:
    if not sig or sig[-1] != 0x01:
        return False
    r, s = _der(sig[:-1])
    if s > secp256k1.q // 2:  # BIP 146 low S
        return False
    point = SEC1Encoder.decode_public_key(pub, secp256k1)
    return bool(ecdsa.verify((r, s), digest, point, curve=secp256k1, prehashed=True))


def _der(sig: bytes) -> tuple[int, int]:
    _expect(len(sig) >= 8 and sig[0] == 0x30 and sig[1] == len(sig) - 2 and sig[2] == 0x02, "signature: not DER")
    lr = sig[3]
    _expect(sig[4 + lr] == 0x02 and 6 + lr + sig[5 + lr] == len(sig), "signature: not DER")
    return int.from_bytes(sig[4:4 + lr], "big"), int.from_bytes(sig[6 + lr:], "big")


def _legacy_sighash(tx: ParsedTx, i: int, script_code: bytes) -> bytes:
    ins = [(x.prev_txid, x.vout, script_code if j == i else b"", x.sequence) for j, x in enumerate(tx.inputs)]
    outs = [(v, s) for v, s in tx.outputs]
    return sha256d(serialize_tx(tx.version, ins, outs, tx.locktime, None) + struct.pack("<I", 1))


def _bip143_sighash(tx: ParsedTx, i: int, script_code: bytes, value: int) -> bytes:
    outpoint = [bytes.fromhex(x.prev_txid)[::-1] + struct.pack("<I", x.vout) for x in tx.inputs]
    prevouts = sha256d(b"".join(outpoint))
    sequences = sha256d(b"".join(struct.pack("<I", x.sequence) for x in tx.inputs))
    outputs = sha256d(b"".join(struct.pack("<q", v) + varint(len(s)) + s for v, s in tx.outputs))
    pre = (struct.pack("<i", tx.version) + prevouts + sequences + outpoint[i] + varint(len(script_code))
           + script_code + struct.pack("<q", value) + struct.pack("<I", tx.inputs[i].sequence) + outputs
           + struct.pack("<I", tx.locktime) + struct.pack("<I", 1))
    return sha256d(pre)

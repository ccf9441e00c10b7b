"""OpenSSH signatures (`ssh-keygen -Y sign`, PROTOCOL.sshsig) by ssh-ed25519 keys.

Verification only, no signing: the auditor holds public keys. The armored
signature is `-----BEGIN SSH SIGNATURE-----`, base64 of: "SSHSIG", uint32
version 1, string public key, string namespace, string reserved, string hash
algorithm (sha256 | sha512), string signature; the signed data is "SSHSIG",
string namespace, string reserved, string hash algorithm, string H(message).
Only ssh-ed25519 keys are accepted: one algorithm, no parameters to get wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["SignerKey", "check_signature", "fingerprint", "key_problem", "parse_key",
           "verify_sshsig"]

_KEY_TYPE = b"ssh-ed25519"
_MAGIC = b"SSHSIG"
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
_MAX_ARMOR = 8192  # an ed25519 SSHSIG is about 300 characters; refuse anything huge


# --- keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignerKey:
    """An allowed signer: the SSH wire blob of its ed25519 key and a name for output."""

    blob: bytes
    name: str


def _key_blob(line: str) -> tuple[bytes, str]:
    """`ssh-ed25519 <base64> [comment]` → (blob, comment). Raises ValueError with why."""
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise ValueError("expected `ssh-ed25519 <base64> [name]`")
    if parts[0] != _KEY_TYPE.decode():
        raise ValueError(f"a {parts[0][:40]} key; only ssh-ed25519 keys are accepted")
    blob = base64.b64decode(parts[1], validate=True)
    _ed25519_key(blob)
    return blob, parts[2].strip() if len(parts) > 2 else ""


def fingerprint(blob: bytes) -> str:
    """The name ssh-keygen -l prints (SHA256:…), for keys without a comment."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_key(line: str) -> SignerKey | None:
    """A public key line (as in id_ed25519.pub); None unless it is a valid ssh-ed25519 key."""
    if not isinstance(line, str):
        return None
    try:
        blob, comment = _key_blob(line)
    except (ValueError, TypeError):
        return None
    return SignerKey(blob, comment or fingerprint(blob))


def key_problem(line: str) -> str | None:
    """Why a key line is not accepted (for check-config), or None when it is."""
    try:
        _key_blob(line)
    except (binascii.Error, _Damaged):
        return "its base64 part is not a whole ssh-ed25519 key (cut or changed when pasted?)"
    except (ValueError, TypeError) as e:
        return str(e)
    return None


# --- SSHSIG --------------------------------------------------------------------


class _Damaged(ValueError):
    """Bytes that end early or run on: a blob cut or padded when pasted."""


class _Wire:
    """Reads the SSH wire format (RFC 4251: uint32, string); _Damaged when short."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Damaged("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint32(self) -> int:
        return int.from_bytes(self.raw(4), "big")

    def string(self) -> bytes:
        return self.raw(self.uint32())

    def end(self) -> None:
        if self.pos != len(self.data):
            raise _Damaged("trailing bytes")


def _string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _ed25519_key(blob: bytes) -> Ed25519PublicKey:
    w = _Wire(blob)
    kind = w.string()
    if kind != _KEY_TYPE:
        raise ValueError(f"a {kind[:40].decode(errors='replace')} key; only ssh-ed25519 keys "
                         "are accepted")
    raw = w.string()
    w.end()
    if len(raw) != 32:
        raise ValueError("not a 32-byte ed25519 key")
    return Ed25519PublicKey.from_public_bytes(raw)


def _dearmor(armored: str) -> bytes:
    text = armored.strip()
    if len(text) > _MAX_ARMOR or not text.startswith(_BEGIN) or not text.endswith(_END):
        raise ValueError(f"not an SSH signature (paste the whole .sig file, {_BEGIN} … {_END})")
    body = "".join(text[len(_BEGIN):-len(_END)].split())  # YAML may fold lines into spaces
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("the signature's base64 is damaged (cut when pasted?)") from None


@dataclass(frozen=True)
class _Sig:
    public_key: bytes
    namespace: bytes
    reserved: bytes
    hash_alg: bytes
    signature: bytes


def _parse_sshsig(armored: str) -> _Sig:
    w = _Wire(_dearmor(armored))
    if w.raw(6) != _MAGIC or w.uint32() != 1:
        raise ValueError("not an SSHSIG version 1 signature")
    sig = _Sig(w.string(), w.string(), w.string(), w.string(), w.string())
    w.end()
    return sig


def check_signature(armored: str, message: bytes, keys: Sequence[SignerKey],
                    namespace: str) -> tuple[SignerKey | None, str]:
    """(the signer, "") or (None, why the signature does not count)."""
    try:
        sig = _parse_sshsig(armored)
        if sig.namespace != namespace.encode():
            shown = sig.namespace[:40].decode(errors="replace")
            return None, (f"signed for namespace {shown!r}, not {namespace!r} (sign with "
                          f"-n {namespace})")
        if sig.hash_alg not in _HASHES:
            return None, "hash algorithm is not sha256 or sha512"
        public = _ed25519_key(sig.public_key)
        signer = next((k for k in keys if k.blob == sig.public_key), None)
        if signer is None:
            return None, f"by a key not in approvals.keys ({fingerprint(sig.public_key)})"
        w = _Wire(sig.signature)
        kind, raw = w.string(), w.string()
        w.end()
        if kind != _KEY_TYPE or len(raw) != 64:
            return None, "not an ssh-ed25519 signature"
        digest = _HASHES[sig.hash_alg](message).digest()
        signed = (_MAGIC + _string(sig.namespace) + _string(sig.reserved)
                  + _string(sig.hash_alg) + _string(digest))
        public.verify(raw, signed)
    except InvalidSignature:
        return None, "does not match the item (changed after signing, or signed for another item)"
    except _Damaged:
        return None, "the signature is damaged (cut or changed when pasted?)"
    except (ValueError, TypeError) as e:
        return None, str(e) if str(e) else "malformed signature"
    return signer, ""


def verify_sshsig(armored: str, message: bytes, allowed_keys: Sequence[str],
                  namespace: str = "auditor-approval") -> str | None:
    """The signer's name (the key's comment, else its SHA256 fingerprint) when `armored`
    is a valid SSHSIG over `message` in `namespace` by one of `allowed_keys`; else None.

    Never raises: malformed input is simply not a valid signature.
    """
    if not isinstance(armored, str) or not isinstance(message, bytes):
        return None
    try:
        keys = [k for k in map(parse_key, allowed_keys) if k is not None]
    except TypeError:  # not a sequence of key lines
        return None
    signer, _why = check_signature(armored, message, keys, namespace)
    return signer.name if signer else None

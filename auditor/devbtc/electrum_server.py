"""An Electrum protocol 1.4 server over the live `SimChain`, on 127.0.0.1.

Newline-delimited JSON-RPC 2.0 over TCP or TLS, batches (JSON arrays),
keep-alive, a thread per connection; every request reads the chain as it is
now. Methods: server.version, server.ping, blockchain.headers.subscribe (with
a notification when the tip moved, pushed before the next answer, as a real
server may), blockchain.block.header, blockchain.transaction.get,
blockchain.transaction.get_merkle and blockchain.scripthash.get_history /
listunspent / get_balance.

Faults (`.faults`, matched on the method name, checked per call): the common
"error", "hang", "garbage", "close", and "bad_value" (listunspent/get_balance
values in BTC as floats), "wrong_tx" (transaction.get answers another
transaction), "bad_merkle" (get_merkle answers a branch with one hash
changed), "shape" (a result of the wrong JSON type).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .chain import SimChain
from .faults import Faults

__all__ = ["ElectrumServer", "self_signed_cert", "merkle_branch"]

MAX_LINE = 4 * 1024 * 1024


class _Fail(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class _ScriptIndex:
    """scripthash → script of every output the chain ever had (only grows: a script
    whose transactions were reorged away simply has an empty history)."""

    def __init__(self, chain: SimChain):
        self.chain = chain
        self.revision = -1
        self.seen: set[str] = set()
        self.scripts: dict[str, str] = {}
        self.lock = threading.Lock()

    def script(self, scripthash: str) -> str | None:
        with self.lock:
            if self.chain.revision != self.revision:
                self._refresh()
            return self.scripts.get(scripthash)

    def _refresh(self) -> None:
        self.revision = self.chain.revision
        txids = [t for h in range(self.chain.height() + 1) for t in self.chain.block(h).txids]
        for txid in txids + self.chain.mempool():
            if txid in self.seen:
                continue
            self.seen.add(txid)
            for script, _ in self.chain.tx(txid).outputs:
                self.scripts[hashlib.sha256(bytes.fromhex(script)).digest()[::-1].hex()] = script


class _Session:
    """One client connection's state: whether it subscribed to headers, and the
    tip it was last told about."""

    def __init__(self) -> None:
        self.subscribed = False
        self.told: str | None = None


class ElectrumServer:
    def __init__(self, chain: SimChain, *, faults: Faults | None = None, tls: tuple[Path, Path] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.chain = chain
        self.faults = faults or Faults()
        self.requests = 0  # JSON-RPC calls answered or faulted (a batch counts each call)
        self.connections = 0
        self.on_call: Callable[[str], None] | None = None  # runs before each call (tests move the chain in it)
        self._index = _ScriptIndex(chain)
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(tls[0]), str(tls[1]))
        self._stopped = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socketserver.ThreadingTCPServer((host, port), self._handler_class(), bind_and_activate=True)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'ssl' if self._tls else 'tcp'}://{host!s}:{port}"

    def start(self) -> ElectrumServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="electrum-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def drop_connections(self) -> None:
        """Close every client connection, as a server restart or an idle timeout does."""
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def __enter__(self) -> ElectrumServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- connections -----------------------------------------------------------------------

    def _handler_class(self) -> type[socketserver.BaseRequestHandler]:
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        return Handler

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock.settimeout(5)
            try:
                sock = self._tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                return  # the client refused our certificate, or is not speaking TLS
            sock.settimeout(None)
        with self._lock:
            self.connections += 1
            self._open.add(sock)
        session = _Session()
        try:
            reader = sock.makefile("rb")
            while not self._stopped.is_set():
                line = reader.readline(MAX_LINE)
                if not line:
                    return
                if line.strip() and not self._answer(sock, session, line):
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open.discard(sock)
            _close(sock)

    def _answer(self, sock: socket.socket, session: _Session, line: bytes) -> bool:
        """Answer one line; False to drop the connection."""
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            sock.sendall(orjson.dumps({"jsonrpc": "2.0", "id": None,
                                       "error": {"code": -32700, "message": "parse error"}}) + b"\n")
            return True
        calls = message if isinstance(message, list) else [message]
        modes = [self._fault(c.get("method")) if isinstance(c, dict) else None for c in calls]
        with self._lock:
            self.requests += len(calls)
        if "close" in modes:
            return False
        if "hang" in modes:
            self._stopped.wait(self.faults.hang_seconds)
            return False
        if "garbage" in modes:
            sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "result": [{"tx_hash": \n')
            return True
        answers = [self._call(session, c, mode) for c, mode in zip(calls, modes)]
        out = b""
        if session.subscribed and session.told != self.chain.tip().hash:
            tip = self.chain.tip()
            session.told = tip.hash
            note = {"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
                    "params": [{"height": tip.height, "hex": tip.header_hex}]}
            out += orjson.dumps(note) + b"\n"
        out += orjson.dumps(answers if isinstance(message, list) else answers[0]) + b"\n"
        sock.sendall(out)
        return True

    def _fault(self, method: Any) -> str | None:
        method = str(method)
        specific = ["shape"]
        if method in ("blockchain.scripthash.listunspent", "blockchain.scripthash.get_balance"):
            specific.append("bad_value")
        if method == "blockchain.transaction.get":
            specific.append("wrong_tx")
        if method == "blockchain.transaction.get_merkle":
            specific.append("bad_merkle")
        return self.faults.pick(method, specific)

    def _call(self, session: _Session, call: Any, mode: str | None) -> dict[str, Any]:
        ident = call.get("id") if isinstance(call, dict) else None
        try:
            if not isinstance(call, dict) or not isinstance(call.get("method"), str):
                raise _Fail(-32600, "invalid request")
            if mode == "error":
                raise _Fail(-32603, "simulated server error")
            if self.on_call is not None:
                self.on_call(call["method"])
            params = call.get("params", [])
            if not isinstance(params, list):
                raise _Fail(-32602, "params must be a list")
            result = self._dispatch(session, call["method"], params, mode)
        except _Fail as fail:
            return {"jsonrpc": "2.0", "id": ident, "error": {"code": fail.code, "message": fail.message}}
        if mode == "shape":
            result = {"unexpected": result} if isinstance(result, list) else [result]
        return {"jsonrpc": "2.0", "id": ident, "result": result}

    # --- methods ---------------------------------------------------------------------------

    def _dispatch(self, session: _Session, method: str, params: list[Any], mode: str | None) -> Any:
        if method == "server.version":
            return ["btcsim-electrum 1.0", "1.4"]
        if method == "server.ping":
            return None
        if method == "blockchain.headers.subscribe":
            tip = self.chain.tip()
            session.subscribed, session.told = True, tip.hash
            return {"height": tip.height, "hex": tip.header_hex}
        if method == "blockchain.block.header":
            return self._header(params)
        if method == "blockchain.transaction.get":
            return self._transaction(params, mode)
        if method == "blockchain.transaction.get_merkle":
            return self._merkle(params, mode)
        if method.startswith("blockchain.scripthash."):
            script = self._script(params)
            if method == "blockchain.scripthash.get_history":
                return self._history(script)
            if method == "blockchain.scripthash.listunspent":
                return self._unspent(script, mode)
            if method == "blockchain.scripthash.get_balance":
                return self._balance(script, mode)
        raise _Fail(-32601, f"unknown method {method!r}")

    def _header(self, params: list[Any]) -> str:
        height = params[0] if params else None
        if not isinstance(height, int) or height < 0:
            raise _Fail(-32602, "height must be a non-negative integer")
        if len(params) > 1 and params[1]:
            raise _Fail(-32602, "cp_height is not supported by the simulator")
        if height > self.chain.height():
            raise _Fail(-32602, f"height {height} out of range")
        return self.chain.block(height).header_hex

    def _transaction(self, params: list[Any], mode: str | None) -> str:
        txid = params[0] if params else None
        if not isinstance(txid, str) or not self.chain.has_tx(txid):
            raise _Fail(2, f"no such mempool or blockchain transaction: {txid}")
        if len(params) > 1 and params[1]:
            raise _Fail(-32602, "verbose transactions are not supported by the simulator")
        if mode == "wrong_tx":
            other = self.chain.block(0).txids[0]
            return self.chain.tx(other if other != txid else self.chain.block(1).txids[0]).raw_hex
        return self.chain.tx(txid).raw_hex

    def _merkle(self, params: list[Any], mode: str | None) -> dict[str, Any]:
        """ElectrumX/electrs: the branch of a transaction confirmed at `height`
        (required, as protocol 1.4 and romanz/electrs have it)."""
        txid = params[0] if params else None
        height = params[1] if len(params) > 1 else None
        if not isinstance(txid, str) or len(txid) != 64:
            raise _Fail(-32602, "tx_hash must be 64 hex characters")
        if type(height) is not int or height < 0:
            raise _Fail(-32602, "height must be a non-negative integer")
        if height > self.chain.height():
            raise _Fail(-32602, f"missing block at {height}")
        txids = self.chain.block(height).txids
        if txid not in txids:
            raise _Fail(1, f"tx {txid} not in block at height {height}")
        pos = txids.index(txid)
        branch = merkle_branch(list(txids), pos)
        if mode == "bad_merkle":
            branch[0] = ("00" if branch[0][:2] != "00" else "01") + branch[0][2:]
        return {"block_height": height, "merkle": branch, "pos": pos}

    def _script(self, params: list[Any]) -> str | None:
        sh = params[0] if params else None
        if not isinstance(sh, str) or len(sh) != 64:
            raise _Fail(-32602, "scripthash must be 64 hex characters")
        return self._index.script(sh)

    def _history(self, script: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for txid, height in self.chain.history(script) if script else []:
            if height > 0:
                out.append({"tx_hash": txid, "height": height})
                continue
            tx = self.chain.tx(txid)
            unconfirmed_parent = any(self.chain.tx(p).height == 0 for p, _ in tx.inputs)
            out.append({"tx_hash": txid, "height": -1 if unconfirmed_parent else 0, "fee": tx.fee})
        return out

    def _unspent(self, script: str | None, mode: str | None) -> list[dict[str, Any]]:
        return [{"tx_hash": txid, "tx_pos": vout, "height": height,
                 "value": value / 1e8 if mode == "bad_value" else value}
                for txid, vout, value, height in (self.chain.utxos(script) if script else [])]

    def _balance(self, script: str | None, mode: str | None) -> dict[str, Any]:
        confirmed = unconfirmed = 0
        for _txid, _vout, value, height in self.chain.utxos(script) if script else []:
            if height > 0:
                confirmed += value
            else:
                unconfirmed += value
        # a coin spent in the mempool: Electrum counts the spend in `unconfirmed`
        for txid, height in self.chain.history(script) if script else []:
            if height == 0:
                for prev, vout in self.chain.tx(txid).inputs:
                    prev_tx = self.chain.tx(prev)
                    if prev_tx.outputs[vout][0] == script and prev_tx.height > 0:
                        confirmed += prev_tx.outputs[vout][1]
                        unconfirmed -= prev_tx.outputs[vout][1]
        if mode == "bad_value":
            return {"confirmed": confirmed / 1e8, "unconfirmed": unconfirmed / 1e8}
        return {"confirmed": confirmed, "unconfirmed": unconfirmed}


def merkle_branch(txids: list[str], pos: int) -> list[str]:
    """The sibling hashes (display order, deepest first) from transaction `pos` of a
    block to its merkle root; the last hash of an odd level pairs with itself."""
    level = [bytes.fromhex(t)[::-1] for t in txids]
    branch = []
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[pos ^ 1][::-1].hex())
        level = [_sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        pos //= 2
    return branch


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) PEM files of a fresh self-signed certificate for `host`
    (an IP address or a DNS name in subjectAltName), as Electrum servers often use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "electrum-cert.pem", folder / "electrum-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file

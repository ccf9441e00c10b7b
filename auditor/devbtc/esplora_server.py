"""The Esplora REST API (Blockstream esplora API.md, electrs semantics) over a live SimChain.

Every request reads the chain as it is now (under its lock), so mining or a
reorg between polls is seen at once. HTTP/1.1 keep-alive (and pipelining) on
a plain asyncio protocol in a background thread: the benchmark polls 10,000
addresses through it.

Faults (`server.faults.set(...)`): the common modes plus "page_gap" (a
`/txs/chain/:last_seen` page that starts one transaction too late),
"page_repeat" (one too early: last_seen again) and "bad_value" (the first
`"value"` of a JSON answer is not an integer).

Funding thousands of addresses for a benchmark: `chain.pay_batched(...)` with
a few outputs per transaction (`SimChain(check_signatures=False)` halves the
cost); one huge fan-out transaction makes every address's answer carry it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Callable
from typing import Any

import orjson

from .chain import SimChain, SimTx
from .codec import address_to_script, parse_tx, script_to_address, script_type
from .faults import Faults

__all__ = ["EsploraServer", "CHAIN_PAGE", "MEMPOOL_PAGE"]

CHAIN_PAGE = 25  # electrs CHAIN_TXS_PER_PAGE
MEMPOOL_PAGE = 50  # electrs MAX_MEMPOOL_TXS
_SPECIFIC = ("page_gap", "page_repeat", "bad_value")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
_JSON, _TEXT, _BINARY = "application/json", "text/plain", "application/octet-stream"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z").match
_VALUE = re.compile(rb'"value":(\d+)')

Answer = tuple[int, str, bytes]


class _NotFound(Exception):
    def __init__(self, text: str, status: int = 404):
        super().__init__(text)
        self.status = status


def _asm(script: bytes) -> str:
    """Esplora's `*_asm` rendering for the scripts the simulator makes."""
    names = {0x76: "OP_DUP", 0xA9: "OP_HASH160", 0x88: "OP_EQUALVERIFY", 0xAC: "OP_CHECKSIG", 0x87: "OP_EQUAL",
             0xAE: "OP_CHECKMULTISIG", 0x6A: "OP_RETURN", 0x00: "OP_0"}
    out, i = [], 0
    while i < len(script):
        op = script[i]
        if 1 <= op <= 75:
            out.append(f"OP_PUSHBYTES_{op} {script[i + 1:i + 1 + op].hex()}")
            i += 1 + op
            continue
        out.append(names.get(op) or (f"OP_PUSHNUM_{op - 0x50}" if 0x51 <= op <= 0x60 else f"OP_UNKNOWN_{op}"))
        i += 1
    return " ".join(out)


class EsploraServer:
    """`EsploraServer(chain).start()`; `.url`, `.faults`, `.requests`, `.stop()`."""

    def __init__(self, chain: SimChain, *, faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0,
                 base_path: str = ""):
        self.chain = chain
        self.faults = faults or Faults()
        self.requests = 0
        self._host, self._port, self._base = host, port, base_path.rstrip("/")
        self._static: dict[str, bytes] = {}  # txid → tx JSON without its status (never changes)
        self._scripthashes: dict[str, str] = {}
        self._scripts: dict[str, str] = {}  # address → script
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[asyncio.Transport] = set()
        self.url = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> EsploraServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="esplora-sim", daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self.url:
            raise RuntimeError("the Esplora simulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(10)
            self._loop = None

    def drop_connections(self) -> None:
        """Close every open connection (as a server does with idle keep-alive ones)."""
        async def drop() -> None:
            for t in list(self._conns):
                t.close()
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(drop(), self._loop).result(5)

    def __enter__(self) -> EsploraServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            loop.create_server(lambda: _Http(self), self._host, self._port, backlog=1024))
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}{self._base}"
        ready.set()
        loop.run_forever()
        loop.close()

    def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.close()
        for t in list(self._conns):
            t.abort()
        self._loop.stop()

    # ------------------------------------------------------------ routing

    def answer(self, method: str, path: str) -> tuple[str | None, Answer]:
        """(fault mode or None, (status, content type, body)) for one request."""
        self.requests += 1
        if self._base:
            if not path.startswith(self._base + "/"):
                return None, (404, _TEXT, b"Not Found")
            path = path[len(self._base):]
        path = path.split("?", 1)[0]
        mode = self.faults.pick(path, _SPECIFIC)
        if mode in ("close", "hang"):
            return mode, (0, "", b"")
        if mode == "error":
            return mode, (500, _TEXT, b"Internal Server Error")
        if method != "GET":
            return None, (405, _TEXT, b"Method Not Allowed")
        try:
            with self.chain.lock:
                status, ctype, body = self._route(path.strip("/").split("/"), mode)
        except _NotFound as exc:
            status, ctype, body = exc.status, _TEXT, str(exc).encode()
        if mode == "garbage":
            body = body[: max(1, len(body) // 2)] if ctype == _JSON else b"<html>502 Bad Gateway</html>"
        elif mode == "bad_value":
            body = _VALUE.sub(rb'"value":\1.5', body, count=1)
        return mode, (status, ctype, body)

    def _route(self, p: list[str], mode: str | None) -> Answer:
        head, n = p[0], len(p)
        if head == "blocks" and n == 3 and p[1] == "tip":
            tip = self.chain.tip()
            if p[2] == "height":
                return 200, _TEXT, str(tip.height).encode()
            if p[2] == "hash":
                return 200, _TEXT, tip.hash.encode()
        if head == "block-height" and n == 2 and p[1].isdigit():
            try:
                return 200, _TEXT, self.chain.block(int(p[1])).hash.encode()
            except KeyError:
                raise _NotFound("Block not found") from None
        if head == "block" and n >= 2:
            return self._block(p[1], p[2:])
        if head in ("address", "scripthash") and n >= 2:
            return self._address(head, p[1], p[2:], mode)
        if head == "tx" and n >= 2:
            return self._tx(p[1], p[2:])
        if head == "mempool" and p[1:] == ["txids"]:
            return 200, _JSON, orjson.dumps(self.chain.mempool())
        raise _NotFound("Not Found")

    # ------------------------------------------------------------ blocks

    def _block(self, block_hash: str, rest: list[str]) -> Answer:
        try:
            b = self.chain.block_by_hash(block_hash)
        except KeyError:
            raise _NotFound("Block not found") from None
        if not rest:
            mtp = sorted(self.chain.block(h).timestamp for h in range(max(0, b.height - 10), b.height + 1))
            return 200, _JSON, orjson.dumps({
                "id": b.hash, "height": b.height, "version": b.version, "timestamp": b.timestamp,
                "tx_count": len(b.txids), "size": b.size, "weight": b.weight, "merkle_root": b.merkle_root,
                "previousblockhash": b.prev_hash if b.height else None, "mediantime": mtp[len(mtp) // 2],
                "nonce": b.nonce, "bits": b.bits, "difficulty": 4.656542373906925e-10})
        if rest == ["header"]:
            return 200, _TEXT, b.header_hex.encode()
        if rest == ["txids"]:
            return 200, _JSON, orjson.dumps(list(b.txids))
        if rest == ["status"]:
            nxt = self.chain.block(b.height + 1).hash if b.height < self.chain.tip().height else None
            return 200, _JSON, orjson.dumps({"in_best_chain": True, "height": b.height, "next_best": nxt})
        raise _NotFound("Not Found")

    # ------------------------------------------------------------ addresses

    def _script_of(self, kind: str, key: str) -> str:
        if kind == "address":
            script = self._scripts.get(key)
            if script is None:
                try:
                    script = address_to_script(key, self.chain.network)
                except ValueError:
                    raise _NotFound("Invalid Bitcoin address", 400) from None
                self._scripts[key] = script
            return script
        if not _HEX64(key):
            raise _NotFound("Invalid scripthash", 400)
        if key not in self._scripthashes:
            for s in self.chain.known_scripts():
                self._scripthashes[hashlib.sha256(bytes.fromhex(s)).digest()[::-1].hex()] = s
        return self._scripthashes.get(key, "")  # unknown: a script without history

    def _address(self, kind: str, key: str, rest: list[str], mode: str | None) -> Answer:
        script = self._script_of(kind, key)
        hist = self.chain.history(script) if script else []
        mem = [t for t, h in reversed(hist) if h == 0]
        conf = [t for t, h in reversed(hist) if h > 0]
        if not rest:
            return 200, _JSON, orjson.dumps({kind: key, "chain_stats": self._stats(script, conf),
                                             "mempool_stats": self._stats(script, mem)})
        if rest == ["txs"]:
            return self._txs(mem[:MEMPOOL_PAGE] + conf[:CHAIN_PAGE])
        if rest == ["txs", "mempool"]:
            return self._txs(mem[:MEMPOOL_PAGE])
        if rest[:2] == ["txs", "chain"] and len(rest) <= 3:
            start = 0
            if len(rest) == 3:  # electrs: an unknown last_seen_txid gives an empty page
                start = conf.index(rest[2]) + 1 if rest[2] in conf else len(conf)
            if mode in ("page_gap", "page_repeat") and len(rest) == 3:
                start += 1 if mode == "page_gap" else -1
            return self._txs(conf[start:start + CHAIN_PAGE])
        if rest == ["utxo"]:
            return 200, _JSON, orjson.dumps([
                {"txid": txid, "vout": vout, "status": self._status(self.chain.tx(txid)), "value": value}
                for txid, vout, value, _h in (self.chain.utxos(script) if script else [])])
        raise _NotFound("Not Found")

    def _stats(self, script: str, txids: list[str]) -> dict[str, int]:
        st = {"funded_txo_count": 0, "funded_txo_sum": 0, "spent_txo_count": 0, "spent_txo_sum": 0,
              "tx_count": len(txids)}
        for txid in txids:
            t = self.chain.tx(txid)
            for s, v in t.outputs:
                if s == script:
                    st["funded_txo_count"] += 1
                    st["funded_txo_sum"] += v
            for (prev, vout), v in zip(t.inputs, t.input_values):
                if self.chain.tx(prev).outputs[vout][0] == script:
                    st["spent_txo_count"] += 1
                    st["spent_txo_sum"] += v
        return st

    def _txs(self, txids: list[str]) -> Answer:
        return 200, _JSON, b"[" + b",".join(self._tx_json(self.chain.tx(t)) for t in txids) + b"]"

    # ------------------------------------------------------------ transactions

    def _tx(self, txid: str, rest: list[str]) -> Answer:
        if not _HEX64(txid) or not self.chain.has_tx(txid):
            raise _NotFound("Transaction not found")
        t = self.chain.tx(txid)
        if not rest:
            return 200, _JSON, self._tx_json(t)
        if rest == ["hex"]:
            return 200, _TEXT, t.raw_hex.encode()
        if rest == ["raw"]:
            return 200, _BINARY, bytes.fromhex(t.raw_hex)
        if rest == ["status"]:
            return 200, _JSON, orjson.dumps(self._status(t))
        if rest == ["outspends"]:
            return 200, _JSON, orjson.dumps([self._outspend(txid, v) for v in range(len(t.outputs))])
        if len(rest) == 2 and rest[0] == "outspend" and rest[1].isdigit() and int(rest[1]) < len(t.outputs):
            return 200, _JSON, orjson.dumps(self._outspend(txid, int(rest[1])))
        raise _NotFound("Not Found")

    def _outspend(self, txid: str, vout: int) -> dict[str, Any]:
        s = self.chain.spender(txid, vout)
        if s is None:
            return {"spent": False}
        spender = self.chain.tx(s[0])
        return {"spent": True, "txid": s[0], "vin": spender.inputs.index((txid, vout)),
                "status": self._status(spender)}

    def _status(self, t: SimTx) -> dict[str, Any]:
        if t.height == 0:
            return {"confirmed": False}
        b = self.chain.block(t.height)
        return {"confirmed": True, "block_height": t.height, "block_hash": b.hash, "block_time": b.timestamp}

    def _tx_json(self, t: SimTx) -> bytes:
        static = self._static.get(t.txid)
        if static is None:
            static = orjson.dumps(self._tx_fields(t))[:-1]
            self._static[t.txid] = static
        return static + b',"status":' + orjson.dumps(self._status(t)) + b"}"

    def _tx_fields(self, t: SimTx) -> dict[str, Any]:
        parsed = parse_tx(bytes.fromhex(t.raw_hex))
        vin = []
        for inp in parsed.inputs:
            entry: dict[str, Any] = {"txid": inp.prev_txid, "vout": inp.vout, "prevout": None,
                                     "scriptsig": inp.script_sig.hex(), "scriptsig_asm": _asm(inp.script_sig)}
            if inp.witness:
                entry["witness"] = [w.hex() for w in inp.witness]
            entry["is_coinbase"] = t.coinbase
            entry["sequence"] = inp.sequence
            if not t.coinbase:
                script, value = self.chain.tx(inp.prev_txid).outputs[inp.vout]
                entry["prevout"] = _vout(bytes.fromhex(script), value)
                if len(inp.witness) > 2 and script_type(bytes.fromhex(script)) == "v0_p2wsh":
                    entry["inner_witnessscript_asm"] = _asm(inp.witness[-1])
                if script_type(bytes.fromhex(script)) == "p2sh":
                    entry["inner_redeemscript_asm"] = _asm(inp.script_sig[1:])
            vin.append(entry)
        return {"txid": t.txid, "version": t.version, "locktime": t.locktime, "vin": vin,
                "vout": [_vout(s, v) for v, s in parsed.outputs], "size": t.size, "weight": t.weight, "fee": t.fee}


def _vout(script: bytes, value: int) -> dict[str, Any]:
    out: dict[str, Any] = {"scriptpubkey": script.hex(), "scriptpubkey_asm": _asm(script),
                           "scriptpubkey_type": script_type(script)}
    address = script_to_address(script)
    if address:
        out["scriptpubkey_address"] = address
    out["value"] = value
    return out


class _Http(asyncio.Protocol):
    """HTTP/1.1 keep-alive with pipelining: requests are answered in order."""

    def __init__(self, server: EsploraServer):
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.stalled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._conns.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._conns.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.stalled:
            return
        self.buf += data
        while not self.stalled:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self._send(400, _TEXT, b"Bad Request", close=True)
                return
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            length = int(headers.get("content-length", "0") or 0)
            self.buf = self.buf[length:]  # bodies (POST /tx) are not used
            mode, (status, ctype, body) = self.server.answer(parts[0], parts[1])
            if mode == "close":
                self._close()
                return
            if mode == "hang":
                self._hang()
                return
            self._send(status, ctype, body, close=headers.get("connection", "").lower() == "close")

    def _send(self, status: int, ctype: str, body: bytes, *, close: bool) -> None:
        assert self.transport is not None
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n")
        self.transport.write(head.encode() + body)
        if close:
            self._close()

    def _close(self) -> None:
        self.stalled = True
        assert self.transport is not None
        self.transport.close()

    def _hang(self) -> None:
        self.stalled = True
        transport = self.transport
        assert transport is not None
        later: Callable[[], None] = transport.close
        asyncio.get_running_loop().call_later(self.server.faults.hang_seconds, later)

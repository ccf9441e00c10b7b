"""A Bitcoin Core JSON-RPC server on 127.0.0.1 over a live `SimChain`.

HTTP/1.1 keep-alive, basic auth (401 with an empty body, as Core answers),
JSON-RPC 1.0 and 2.0 with Core's semantics (legacy: an error is HTTP 500/404
with the error object; 2.0: HTTP 200; batches: always 200) and batch arrays.
Methods: getblockchaininfo, getblockcount, getbestblockhash, getblockhash,
getblockheader, getblock (verbosity 0–3), scantxoutset (start/status/abort),
gettxspendingprevout, getrawtransaction (a confirmed one only with `txindex`
or its block hash, like a node without -txindex; verbosity 2 with prevouts
for confirmed ones only, as Core 25+ reads them from undo data), gettxout,
deriveaddresses, getdescriptorinfo. Shapes: `bitcoind_views.py`.

Faults (`faults.set(mode, match)`, `match` against the RPC method): "error"
(a JSON-RPC error), "hang", "garbage", "close", and bitcoind's own: "http500"
(a bare HTTP 500 page, like a proxy in front of Core), "unauthorized" (401),
"abort" (scantxoutset `success: false`), "shape" (a result of the wrong shape),
"subsat" / "overflow" (amounts that are not whole satoshis / above 21M BTC),
"tip_moves" (a block is mined right after the answer is computed).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .bitcoind_views import Amount, Descriptors, RpcError, block_json, dumps, header_json, script_json, tx_json
from .chain import SimChain
from .faults import Faults

__all__ = ["BitcoindServer"]

_WHOLE = ("garbage", "close", "hang", "http500", "unauthorized")  # faults that replace the HTTP answer
_SPECIFIC = ("http500", "unauthorized", "shape", "subsat", "overflow", "tip_moves")  # bitcoind's own modes
_MAX_RANGE = 1_000_000


class BitcoindServer:
    """`start()`, `.url` (no credentials; `url_with()` adds them), `.faults`,
    `.requests` (HTTP requests), `.calls` (RPC calls per method), `stop()`."""

    def __init__(self, chain: SimChain, *, user: str = "rpcuser", password: str = "rpc-secret-pw",
                 chain_name: str = "regtest", txindex: bool = False, faults: Faults | None = None,
                 port: int = 0):
        self.chain = chain
        self.user, self.password = user, password
        self.chain_name = chain_name
        self.txindex = txindex
        self.faults = faults or Faults()
        self.requests = 0
        self.calls: Counter[str] = Counter()
        self.descriptors = Descriptors()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = port
        self.url = ""

    def start(self) -> BitcoindServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="bitcoind-sim",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> BitcoindServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url_with(self, user: str | None = None, password: str | None = None) -> str:
        host = self.url.removeprefix("http://")
        return f"http://{user or self.user}:{password or self.password}@{host}"

    def authorized(self, header: str | None) -> bool:
        want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == want

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # ------------------------------------------------------------ JSON-RPC

    def answer(self, request: Any, mode: str | None) -> tuple[int, str | None]:
        """(HTTP status, body or None for no content) for a parsed request."""
        if isinstance(request, list):
            replies = [r for r in (self._one(item, mode)[1] for item in request) if r is not None]
            return 200, "[" + ",".join(replies) + "]\n"
        status, reply = self._one(request, mode)
        return status, None if reply is None else reply + "\n"

    def _one(self, item: Any, mode: str | None) -> tuple[int, str | None]:
        if not isinstance(item, dict):
            return 400, self._reply(None, None, RpcError(-32600, "Invalid Request object"), False)
        v2 = item.get("jsonrpc") == "2.0"
        rid = item.get("id")
        try:
            method = item.get("method")
            params = item.get("params", [])
            if not isinstance(method, str):
                raise RpcError(-32600, "Method must be a string")
            if not isinstance(params, list):
                raise RpcError(-32602, "this simulator takes positional params only")
            with self._lock:
                self.calls[method] += 1
                result = self._call(method, params, mode)
        except RpcError as exc:
            if v2 and "id" not in item:
                return 204, None
            status = 200 if v2 else {-32600: 400, -32601: 404}.get(exc.code, 500)
            return status, self._reply(rid, None, exc, v2)
        if v2 and "id" not in item:
            return 204, None  # a notification: executed, never answered
        return 200, self._reply(rid, result, None, v2, mode)

    @staticmethod
    def _reply(rid: Any, result: Any, error: RpcError | None, v2: bool, mode: str | None = None) -> str:
        err = None if error is None else {"code": error.code, "message": error.message}
        body: dict[str, Any] = {"jsonrpc": "2.0"} if v2 else {}
        if v2:
            body.update({"error": err} if error else {"result": result})
        else:
            body.update({"result": result, "error": err})
        body["id"] = rid
        return dumps(body, mode if mode in ("subsat", "overflow") else "exact")

    def _call(self, method: str, params: list[Any], mode: str | None) -> Any:
        if mode == "error":
            raise RpcError(-1, "simulated failure")
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None:
            raise RpcError(-32601, "Method not found")
        result = handler(*params)
        if mode == "tip_moves":
            self.chain.mine(1)
        if mode == "shape":
            result = _wrong_shape(result)
        if mode == "abort" and method == "scantxoutset" and isinstance(result, dict):
            result.update(success=False, unspents=[], total_amount=Amount(0))
        return result

    # ------------------------------------------------------------ methods

    def rpc_getblockchaininfo(self) -> dict[str, Any]:
        tip = self.chain.tip()
        return {"chain": self.chain_name, "blocks": tip.height, "headers": tip.height, "bestblockhash": tip.hash,
                "bits": f"{tip.bits:08x}", "target": f"{0x7FFFFF << 232:064x}", "difficulty": 4.656542373906925e-10,
                "time": tip.timestamp, "mediantime": header_json(self.chain, tip)["mediantime"],
                "verificationprogress": 1, "initialblockdownload": False, "chainwork": f"{2 * (tip.height + 1):064x}",
                "size_on_disk": 0, "pruned": False, "warnings": []}

    def rpc_getblockcount(self) -> int:
        return self.chain.height()

    def rpc_getbestblockhash(self) -> str:
        return self.chain.tip().hash

    def rpc_getblockhash(self, height: Any) -> str:
        if type(height) is not int or not 0 <= height <= self.chain.height():
            raise RpcError(-8, "Block height out of range")
        return self.chain.block(height).hash

    def _block(self, block_hash: Any) -> Any:
        try:
            return self.chain.block_by_hash(str(block_hash))
        except KeyError:
            raise RpcError(-5, "Block not found") from None

    def rpc_getblockheader(self, block_hash: Any, verbose: Any = True) -> Any:
        block = self._block(block_hash)
        return header_json(self.chain, block) if verbose else block.header_hex

    def rpc_getblock(self, block_hash: Any, verbosity: Any = 1) -> Any:
        block = self._block(block_hash)
        level = int(verbosity) if type(verbosity) in (int, bool) else -1
        if not 0 <= level <= 3:
            raise RpcError(-8, "Verbosity must be in range 0..3")
        return block_json(self.chain, block, level)

    def rpc_getrawtransaction(self, txid: Any, verbose: Any = 0, block_hash: Any = None) -> Any:
        if not self.chain.has_tx(str(txid)):
            raise RpcError(-5, "No such mempool or blockchain transaction")
        tx = self.chain.tx(str(txid))
        confirmed = tx.height > 0
        if confirmed and not self.txindex and block_hash is None:
            raise RpcError(-5, "No such mempool transaction. Use -txindex or provide a block hash to enable "
                               "blockchain transaction queries. Use gettransaction for wallet transactions.")
        if block_hash is not None and (not confirmed or self.chain.block(tx.height).hash != block_hash):
            raise RpcError(-5, "No such transaction found in the provided block.")
        if not verbose:
            return tx.raw_hex
        # Core 25+: verbosity 2 adds fee and prevouts from the block's undo data, so a
        # mempool transaction (no block) or a coinbase gets the verbosity 1 answer.
        detail = 3 if verbose == 2 and confirmed and not tx.coinbase else 1
        out: dict[str, Any] = {"in_active_chain": True} if block_hash is not None else {}
        out.update(tx_json(self.chain, tx, detail))
        if confirmed:
            block = self.chain.block(tx.height)
            out.update(blockhash=block.hash, confirmations=self.chain.height() - tx.height + 1,
                       time=block.timestamp, blocktime=block.timestamp)
        return out

    def rpc_gettxout(self, txid: Any, n: Any, include_mempool: Any = True) -> Any:
        """An unspent output: from the chainstate (confirmed; a spend in the mempool
        ignored) or, with include_mempool, the mempool's view (outputs of mempool
        transactions included, outputs spent in the mempool left out). null otherwise."""
        if not isinstance(txid, str) or len(txid) != 64:
            raise RpcError(-8, "txid must be of length 64")
        if type(n) is not int or n < 0:
            raise RpcError(-8, "Invalid parameter, vout cannot be negative")
        if not self.chain.has_tx(txid):
            return None
        tx = self.chain.tx(txid)
        if n >= len(tx.outputs) or tx.outputs[n][0].startswith("6a"):
            return None
        spender = self.chain.spender(txid, n)
        if include_mempool:
            if spender is not None:
                return None
        elif tx.height == 0 or (spender is not None and spender[1] > 0):
            return None
        script, value = tx.outputs[n]
        tip = self.chain.tip()
        return {"bestblock": tip.hash, "confirmations": tip.height - tx.height + 1 if tx.height else 0,
                "value": Amount(value), "scriptPubKey": script_json(script), "coinbase": tx.coinbase}

    def rpc_gettxspendingprevout(self, outputs: Any) -> list[dict[str, Any]]:
        if not isinstance(outputs, list) or not outputs:
            raise RpcError(-8, "Invalid parameter, outputs are missing")
        out = []
        for o in outputs:
            if not isinstance(o, dict) or not isinstance(o.get("txid"), str) or len(o["txid"]) != 64:
                raise RpcError(-8, "txid must be of length 64")
            if type(o.get("vout")) is not int or o["vout"] < 0:
                raise RpcError(-8, "Invalid parameter, vout cannot be negative")
            item = {"txid": o["txid"], "vout": o["vout"]}
            spender = self.chain.spender(o["txid"], o["vout"])
            if spender is not None and spender[1] == 0:
                item["spendingtxid"] = spender[0]
            out.append(item)
        return out

    def rpc_scantxoutset(self, action: Any, scanobjects: Any = None) -> Any:
        if action == "status":
            return None
        if action == "abort":
            return False
        if action != "start":
            raise RpcError(-8, f"Invalid action '{action}'")
        if not isinstance(scanobjects, list):
            raise RpcError(-1, "scanobjects argument is required for the start action")
        needles: dict[str, tuple[str, int]] = {}
        for obj in scanobjects:
            desc, lo, hi = _scan_object(obj)
            body = self.descriptors.split(desc, require_checksum=False)
            for single, index, script in self.descriptors.scripts(body, lo, hi):
                needles.setdefault(script, (single, index))
        while True:  # one consistent view even if the chain changes meanwhile
            revision = self.chain.revision
            tip = self.chain.tip()
            rows = list(self.chain.confirmed_utxo_set())
            if revision == self.chain.revision:
                break
        unspents: list[dict[str, Any]] = []
        for txid, vout, script, value, height, coinbase in sorted(rows):
            if script in needles:
                single, index = needles[script]
                unspents.append({"txid": txid, "vout": vout, "scriptPubKey": script,
                                 "desc": self.descriptors.specialize(single, index, script),
                                 "amount": Amount(value), "coinbase": coinbase, "height": height,
                                 "blockhash": self.chain.block(height).hash,
                                 "confirmations": tip.height - height + 1})
        return {"success": True, "txouts": len(rows), "height": tip.height, "bestblock": tip.hash,
                "unspents": unspents, "total_amount": Amount(sum(u["amount"] for u in unspents))}

    def rpc_deriveaddresses(self, descriptor: Any, range_: Any = None) -> list[str]:
        from .codec import script_to_address

        body = self.descriptors.split(str(descriptor), require_checksum=True)
        ranged = self.descriptors.ranged(body)
        if ranged and range_ is None:
            raise RpcError(-8, "Range must be specified for a ranged descriptor")
        if not ranged and range_ is not None:
            raise RpcError(-8, "Range should not be specified for an un-ranged descriptor")
        lo, hi = _range(range_) if ranged else (0, 0)
        out = []
        for _single, _i, script in self.descriptors.scripts(body, lo, hi):
            address = script_to_address(bytes.fromhex(script))
            if address is None:
                raise RpcError(-5, "Descriptor does not have a corresponding address")
            out.append(address)
        return out

    def rpc_getdescriptorinfo(self, descriptor: Any) -> dict[str, Any]:
        from auditor.chains.bitcoin.bitcoind_rpc import descriptor_checksum

        body = self.descriptors.split(str(descriptor), require_checksum=False)
        self.descriptors.scripts(body, 0, 0)  # parses it
        return {"descriptor": f"{body}#{descriptor_checksum(body)}", "checksum": descriptor_checksum(body),
                "isrange": self.descriptors.ranged(body), "issolvable": True, "hasprivatekeys": False}


def _range(value: Any) -> tuple[int, int]:
    """Core's ParseDescriptorRange: n means [0, n]."""
    if type(value) is int:
        lo, hi = 0, value
    elif isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        lo, hi = value
        if lo > hi:
            raise RpcError(-8, "Range specified as [begin,end] must not have begin after end")
    else:
        raise RpcError(-8, "Range must be specified as end or as [begin,end]")
    if lo < 0:
        raise RpcError(-8, "Range should be greater or equal than 0")
    if hi >> 31:
        raise RpcError(-8, "End of range is too high")
    if hi >= lo + _MAX_RANGE:
        raise RpcError(-8, "Range is too large")
    return lo, hi


def _scan_object(obj: Any) -> tuple[str, int, int]:
    if isinstance(obj, str):
        return obj, 0, 1000
    if not isinstance(obj, dict):
        raise RpcError(-8, "Scan object needs to be either a string or an object")
    if not isinstance(obj.get("desc"), str):
        raise RpcError(-8, "Descriptor needs to be provided in scan object")
    lo, hi = _range(obj["range"]) if obj.get("range") is not None else (0, 1000)
    return obj["desc"], lo, hi


def _wrong_shape(result: Any) -> Any:
    if isinstance(result, dict):
        return {k: (str(v) if type(v) is int else v) for k, v in result.items() if k != "unspents"} | {
            "unspents": {"not": "a list"}}
    if isinstance(result, list):
        return {"not": "a list"}
    return 12345


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out at once

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        srv: BitcoindServer = self.server.owner  # type: ignore[attr-defined]
        with srv._lock:
            srv.requests += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not srv.authorized(self.headers.get("Authorization")):
            self._send(401, b"", "text/html", {"WWW-Authenticate": 'Basic realm="jsonrpc"'})
            return
        try:
            request = json.loads(body)
        except ValueError:
            self._send(500, b'{"result":null,"error":{"code":-32700,"message":"Parse error"},"id":null}\n')
            return
        items = request if isinstance(request, list) else [request]
        modes = [srv.faults.pick(m, _SPECIFIC + ("abort",) * (m == "scantxoutset"))
                 for m in (str(i.get("method", "")) if isinstance(i, dict) else "" for i in items)]
        mode = next((m for m in modes if m is not None), None)
        if mode in _WHOLE:
            self._fault(srv, mode)
            return
        status, reply = srv.answer(request, mode)
        if reply is None:
            self._send(204, b"")
        else:
            self._send(status, reply.encode())

    def _fault(self, srv: BitcoindServer, mode: str | None) -> None:
        if mode == "hang":
            srv.sleep(srv.faults.hang_seconds)
        if mode in ("hang", "close"):
            self.close_connection = True
            return
        if mode == "garbage":
            self._send(200, b'{"result":{"success":true,"unspents":[{"txid":"ab')
        elif mode == "http500":
            self._send(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
        else:
            self._send(401, b"", "text/html", {"WWW-Authenticate": 'Basic realm="jsonrpc"'})

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

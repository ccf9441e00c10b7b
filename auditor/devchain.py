"""A local Ethereum dev chain (anvil) and the project's test contracts.

Used by the tests, the demo and the benchmarks, never by the poll path.
`Anvil` runs the npm-installed anvil binary on a free 127.0.0.1 port;
`compile_contracts()` compiles `auditor/contracts/*.sol` with solcjs (via
`node`), cached on disk by source hash; the helpers install Multicall3 at its
canonical address and deploy/mint/transfer the `TestToken` ERC-20.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from eth_utils.crypto import keccak

__all__ = [
    "DevchainError",
    "MULTICALL3_ADDRESS",
    "TOKEN_BALANCE_SLOT",
    "DEV_ACCOUNTS",
    "find_anvil",
    "find_node_modules",
    "compile_contracts",
    "Anvil",
    "install_multicall3",
    "deploy_erc20",
    "mint",
    "transfer",
    "token_balance_slot",
    "set_token_balances",
    "encode_call",
]

MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"
TOKEN_BALANCE_SLOT = 0  # TestToken.sol: `balanceOf` is the first state variable
# anvil's default unlocked, funded accounts (the well-known test mnemonic).
DEV_ACCOUNTS = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
)
_CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_ANVIL_IN_NODE_MODULES = Path("@foundry-rs/anvil-linux-amd64/bin/anvil")
_EVM_VERSION = "cancun"  # runs on anvil and on py-evm based chains alike
_SOLC_SCRIPT = (
    "let s='';process.stdin.on('data',d=>s+=d);"
    "process.stdin.on('end',()=>process.stdout.write(require('solc').compile(s)));"
)


class DevchainError(RuntimeError):
    """The dev chain or the contract compiler could not do what was asked."""


def find_node_modules() -> Path:
    """The node_modules folder holding the npm dev tools (repo root, else cwd)."""
    for base in (_REPO_ROOT, Path.cwd()):
        if (base / "node_modules").is_dir():
            return base / "node_modules"
    raise DevchainError(
        "node_modules not found next to the auditor package or in the current directory: "
        "run `npm ci` in the repository root (or `make deps`)"
    )


def find_anvil() -> Path:
    """The anvil binary: $AUDITOR_ANVIL, else node_modules, else PATH."""
    env = os.environ.get("AUDITOR_ANVIL")
    if env:
        if not Path(env).is_file():
            raise DevchainError(f"AUDITOR_ANVIL={env!r} is not a file: point it at an anvil binary")
        return Path(env)
    for base in (_REPO_ROOT, Path.cwd()):
        candidate = base / "node_modules" / _ANVIL_IN_NODE_MODULES
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise DevchainError(
        "anvil not found: run `npm ci` in the repository root (it installs "
        "@foundry-rs/anvil-linux-amd64), or set AUDITOR_ANVIL to an anvil binary"
    )


# --- compiling the contracts -------------------------------------------------


def _cache_dir() -> Path:
    base = os.environ.get("AUDITOR_CACHE_DIR") or Path(tempfile.gettempdir()) / "custody-auditor"
    return Path(base) / "solc"


def _solc_input(sources: Mapping[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sorted(sources.items())},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": _EVM_VERSION,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def _run_solc(std_input: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise DevchainError("node not found on PATH: install Node.js (20+) to compile contracts")
    proc = subprocess.run(
        [node, "-e", _SOLC_SCRIPT],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        cwd=find_node_modules().parent,  # so require('solc') finds node_modules/solc
        timeout=300,
    )
    if proc.returncode != 0:
        raise DevchainError(f"solcjs failed (run `npm ci`?): {proc.stderr.strip()[:500]}")
    output: dict[str, Any] = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise DevchainError("contract compilation failed:\n" + "\n".join(
            e.get("formattedMessage", e.get("message", "?")) for e in errors))
    return output


def compile_contracts(directory: Path = _CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """{contract name: {"abi", "bytecode", "runtime"}} (hex with 0x), cached by source hash."""
    sources = {p.name: p.read_text() for p in sorted(directory.glob("*.sol"))}
    std_input = _solc_input(sources)
    key = hashlib.sha256(json.dumps(std_input, sort_keys=True).encode()).hexdigest()
    cached = _cache_dir() / f"{key}.json"
    if cached.is_file():
        result: dict[str, dict[str, Any]] = json.loads(cached.read_text())
        return result
    output = _run_solc(std_input)
    result = {}
    for contracts in output["contracts"].values():
        for name, c in contracts.items():
            result[name] = {
                "abi": c["abi"],
                "bytecode": "0x" + c["evm"]["bytecode"]["object"],
                "runtime": "0x" + c["evm"]["deployedBytecode"]["object"],
            }
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(cached)  # atomic: parallel test runs never read half a file
    return result


# --- ABI encoding for the few calls the helpers make ---------------------------


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def encode_call(signature: str, *args: int | str | bytes) -> str:
    """Calldata for a call with static arguments (uint/address/bool) or one string per arg.

    Strings are encoded dynamically; everything else as one 32-byte word.
    Enough for the test contracts; the poll path has its own encoder.
    """
    head, tail = b"", b""
    base = 32 * len(args)
    for arg in args:
        if isinstance(arg, str) and not arg.startswith("0x"):
            data = arg.encode()
            head += _word(base + len(tail))
            tail += _word(len(data)) + data + b"\0" * (-len(data) % 32)
        elif isinstance(arg, str):
            head += _word(int(arg, 16))
        elif isinstance(arg, bytes):
            head += arg.rjust(32, b"\0")
        else:
            head += _word(int(arg))
    return "0x" + (keccak(text=signature)[:4] + head + tail).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Anvil:
    """A running anvil on 127.0.0.1 (a context manager).

    Cheat codes need at least one mined block: call `mine()` after start if
    you use them on a fresh chain.
    """

    def __init__(self, *, chain_id: int = 31337, args: Sequence[str] = (),
                 binary: Path | None = None, startup_timeout: float = 15.0) -> None:
        self.chain_id = chain_id
        self.args = tuple(args)
        self.binary = binary or find_anvil()
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=60.0)
        self._ids = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Anvil:
        for _ in range(3):  # a free port can be taken between probe and bind: retry
            self.port = _free_port()
            cmd = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
                   "--silent", "--chain-id", str(self.chain_id), *self.args]
            self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready():
                return self
            self.stop()
        raise DevchainError(f"anvil did not start ({self.binary}); tried 3 ports")

    def _wait_ready(self) -> bool:
        end = time.monotonic() + self.startup_timeout
        while time.monotonic() < end:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                if int(self.rpc("eth_chainId"), 16) == self.chain_id:
                    return True
            except (httpx.HTTPError, DevchainError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        self.stop()
        self._http.close()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- JSON-RPC -----------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer = self._http.post(self.url, json=body).json()
        if "error" in answer:
            raise DevchainError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one POST; results in order. Raises on any error."""
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in enumerate(calls)]
        if not body:
            return []
        answers = {a["id"]: a for a in self._http.post(self.url, json=body).json()}
        out = []
        for i in range(len(body)):
            if "error" in answers[i]:
                raise DevchainError(f"{body[i]['method']} failed: {answers[i]['error']}")
            out.append(answers[i]["result"])
        return out

    # --- cheat codes and transactions -----------------------------------------

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def block(self, number: int | str = "latest") -> dict[str, Any]:
        tag = hex(number) if isinstance(number, int) else number
        block: dict[str, Any] = self.rpc("eth_getBlockByNumber", tag, False)
        return block

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def set_balances(self, balances: Mapping[str, int], per_post: int = 2000) -> None:
        """Many `anvil_setBalance` calls, batched (fast funding of many accounts)."""
        items = [("anvil_setBalance", (a, hex(w))) for a, w in balances.items()]
        for i in range(0, len(items), per_post):
            self.batch(items[i:i + per_post])

    def mine(self, n: int = 1, timestamp: int | None = None) -> None:
        if timestamp is not None:
            self.rpc("evm_setNextBlockTimestamp", hex(timestamp))
        self.rpc("anvil_mine", hex(n))

    def set_code(self, address: str, code_hex: str) -> None:
        self.rpc("anvil_setCode", address, code_hex)

    def set_storage_at(self, address: str, slot: int, value: int) -> None:
        self.rpc("anvil_setStorageAt", address, "0x" + _word(slot).hex(), "0x" + _word(value).hex())

    def impersonate(self, address: str) -> None:
        self.rpc("anvil_impersonateAccount", address)

    def send_tx(self, from_: str, to: str | None, value: int = 0, data: bytes | str = b"",
                *, check: bool = True) -> dict[str, Any]:
        """Send from any address (impersonated), mined at once; returns the receipt."""
        self.impersonate(from_)
        tx: dict[str, Any] = {"from": from_, "value": hex(value)}
        if to is not None:
            tx["to"] = to
        payload = data if isinstance(data, str) else "0x" + data.hex()
        if payload not in ("", "0x"):
            tx["data"] = payload
        tx_hash = self.rpc("eth_sendTransaction", tx)
        receipt: dict[str, Any] | None = self.rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is None:  # automine off: mine it
            self.mine()
            receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is None or (check and receipt["status"] != "0x1"):
            raise DevchainError(f"transaction {tx_hash} from {from_} failed: {receipt}")
        return receipt

    def deploy(self, bytecode_hex: str, from_: str = DEV_ACCOUNTS[0],
               constructor_args: str = "") -> str:
        """Deploy; returns the contract address (checksummed as anvil reports it, lowercase)."""
        receipt = self.send_tx(from_, None, data=bytecode_hex + constructor_args.removeprefix("0x"))
        address: str = receipt["contractAddress"]
        return address


# --- contract helpers ----------------------------------------------------------


def install_multicall3(anvil: Anvil, address: str = MULTICALL3_ADDRESS) -> str:
    """Put the project's Multicall3 runtime at its canonical address."""
    anvil.set_code(address, compile_contracts()["Multicall3"]["runtime"])
    return address


def deploy_erc20(anvil: Anvil, name: str, symbol: str, decimals: int,
                 owner: str = DEV_ACCOUNTS[0]) -> str:
    """Deploy a TestToken; `owner` may mint. Returns its address."""
    bytecode = compile_contracts()["TestToken"]["bytecode"]
    args = encode_call("x()", name, symbol, decimals)[10:]  # the args without a selector
    return anvil.deploy(bytecode, owner, args)


def mint(anvil: Anvil, token: str, to: str, amount: int,
         owner: str = DEV_ACCOUNTS[0]) -> dict[str, Any]:
    return anvil.send_tx(owner, token, data=encode_call("mint(address,uint256)", to, amount))


def transfer(anvil: Anvil, token: str, from_: str, to: str, amount: int) -> dict[str, Any]:
    return anvil.send_tx(from_, token, data=encode_call("transfer(address,uint256)", to, amount))


def token_balance_slot(holder: str) -> int:
    """The storage slot of TestToken.balanceOf[holder] (Solidity mapping layout)."""
    return int.from_bytes(keccak(_word(int(holder, 16)) + _word(TOKEN_BALANCE_SLOT)), "big")


def set_token_balances(anvil: Anvil, token: str, balances: Mapping[str, int],
                       per_post: int = 2000) -> None:
    """Write TestToken balances straight into storage (fast funding; totalSupply not kept)."""
    items = [("anvil_setStorageAt", (token, "0x" + _word(token_balance_slot(a)).hex(),
                                     "0x" + _word(v).hex())) for a, v in balances.items()]
    for i in range(0, len(items), per_post):
        anvil.batch(items[i:i + per_post])

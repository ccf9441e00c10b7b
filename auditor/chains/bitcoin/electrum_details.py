"""Pieces of `ElectrumBackend.transactions` that need no connection.

An Electrum server gives a transaction as raw bytes (`blockchain.transaction.get`,
parsed and its txid recomputed in rawtx.py) and nothing about where it is.
The values and scripts its inputs spend come from the previous transactions
(read the same way); its height from the history of a script it touches
(`blockchain.scripthash.get_history`, which every server implements); and the
block is checked, not trusted: the merkle branch of `blockchain.transaction.
get_merkle` must lead to the merkle root of the header at that height, the
proof Electrum wallets use (SPV).

Which script's history: preferably one whose history the backend has already
read in a scan (an own script, so known to be readable and small), else the
first output's: a busy foreign script (an exchange's reused deposit address)
could have a history too long for the server to send.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any

from .details import is_coinbase_input
from .rawtx import Header, RawTx, merkle_branch_root

__all__ = ["spent_txids", "tx_inputs", "height_script", "check_proof"]

Input = tuple[str, int, str, int]


def _coinbase(tx: RawTx) -> bool:
    return len(tx.inputs) == 1 and is_coinbase_input(*tx.inputs[0])


def spent_txids(txs: Iterable[RawTx]) -> set[str]:
    """The transactions whose outputs `txs` spend."""
    return {prev for tx in txs if not _coinbase(tx) for prev, _ in tx.inputs}


def tx_inputs(tx: RawTx, prevs: Mapping[str, RawTx]) -> tuple[Input, ...]:
    """Every input with the script and value of the output it spends (none for a
    coinbase); ValueError when a previous transaction has no such output."""
    if _coinbase(tx):
        return ()
    out = []
    for prev, vout in tx.inputs:
        outputs = prevs[prev].outputs
        if vout >= len(outputs):
            raise ValueError(f"{tx.txid} spends output {vout} of {prev}, which has {len(outputs)}")
        out.append((prev, vout, *outputs[vout]))
    return tuple(out)


def height_script(tx: RawTx, inputs: tuple[Input, ...], readable: Container[str]) -> str:
    """The script whose history tells the height of `tx` (see the module docstring)."""
    outputs = [s for s, _ in tx.outputs if not s.startswith("6a")]  # OP_RETURN is never indexed
    candidates = outputs + [script for _, _, script, _ in inputs]
    for script in candidates:
        if script in readable:
            return script
    if not candidates:
        raise ValueError(f"{tx.txid} touches no script an Electrum server indexes")
    return candidates[0]


def check_proof(txid: str, height: int, answer: Any, header: Header) -> None:
    """ValueError unless `answer` (get_merkle's) proves `txid` in the block of `header`."""
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    branch, pos = answer.get("merkle"), answer.get("pos")
    if answer.get("block_height") != height or type(pos) is not int or not isinstance(branch, list) \
            or not all(isinstance(h, str) for h in branch):
        raise ValueError("block_height, merkle or pos missing or of the wrong type")
    if merkle_branch_root(txid, branch, pos) != header.merkle_root:
        raise ValueError(f"the merkle branch of {txid} does not lead to the merkle root of block {height}")

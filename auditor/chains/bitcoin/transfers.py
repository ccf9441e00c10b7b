"""Bitcoin transactions as `Transfer`s: who paid whom, from the own wallets' side.

A transaction that spends own coins is charged to the wallet of its first own
input (the spending wallet; `sender` is that input's address). Each output
then is one of:

- to a foreign script: an outgoing transfer (`recipient` and the only
  counterparty: the output's address, or `script:<hex>` for a script without
  one);
- to another own wallet: an internal transfer (`wallet_from` and `wallet_to`);
- back to the spending wallet: change, no transfer;

and the fee (inputs − outputs) is a transfer of kind "fee", index -1,
recipient "", when every input is own. A transaction that also spends
foreign coins (a coinjoin, a payjoin) is charged no fee: the auditor cannot
tell who paid it; and every foreign output still counts as outgoing, since it
cannot tell either which of them the foreign inputs paid for, so such a
transaction shows at most more outflow than the wallet lost, never less.

A transaction that spends no own coin but pays own scripts is incoming: one
transfer per own output, `sender` the first input's address and
`counterparties` every distinct input address (what sanctions screening
checks; none for a coinbase).

Inputs of several own wallets in one transaction are all charged to the first
one's wallet. Outputs of value 0 (OP_RETURN data) move nothing and give no
transfer. Amounts are satoshis, which are BTC's base units (8 decimals).
Mempool transactions have block 0 and block hash "". Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...model import Transfer, TransferKind
from .script_address import script_name
from .types import TxDetail

__all__ = ["bitcoin_transfers"]


def bitcoin_transfers(chain: str, asset: str, details: Iterable[TxDetail],
                      own: Mapping[str, tuple[str, str]], network: str) -> list[Transfer]:
    """The transfers of `details` touching `own` scripts (script hex → (wallet
    name, address)), ordered by (block, tx, index)."""
    out: list[Transfer] = []
    for tx in details:
        own_inputs = [own[script] for _, _, script, _ in tx.inputs if script in own]
        if own_inputs:
            out += _outgoing(chain, asset, tx, own, own_inputs[0], len(own_inputs) == len(tx.inputs), network)
        else:
            out += _incoming(chain, asset, tx, own, network)
    out.sort(key=lambda t: (t.block, t.tx, t.index))
    return out


def _transfer(chain: str, asset: str, tx: TxDetail, index: int, amount: int, sender: str, recipient: str,
              wallet_from: str | None, wallet_to: str | None, counterparties: tuple[str, ...],
              kind: TransferKind = "native") -> Transfer:
    return Transfer(chain=chain, block=tx.height, block_hash=tx.block_hash, tx=tx.txid, index=index,
                    kind=kind, asset=asset, amount=amount, sender=sender,
                    recipient=recipient, wallet_from=wallet_from, wallet_to=wallet_to,
                    counterparties=counterparties, timestamp=tx.timestamp)


def _outgoing(chain: str, asset: str, tx: TxDetail, own: Mapping[str, tuple[str, str]],
              spender: tuple[str, str], all_own: bool, network: str) -> list[Transfer]:
    wallet, sender = spender
    out = []
    for n, (script, value) in enumerate(tx.outputs):
        if value == 0:
            continue
        mine = own.get(script)
        if mine is None:
            recipient = script_name(script, network)
            out.append(_transfer(chain, asset, tx, n, value, sender, recipient, wallet, None, (recipient,)))
        elif mine[0] != wallet:
            out.append(_transfer(chain, asset, tx, n, value, sender, mine[1], wallet, mine[0], ()))
    fee = sum(i[3] for i in tx.inputs) - sum(v for _, v in tx.outputs)
    if all_own and fee > 0:
        out.append(_transfer(chain, asset, tx, -1, fee, sender, "", wallet, None, (), kind="fee"))
    return out


def _incoming(chain: str, asset: str, tx: TxDetail, own: Mapping[str, tuple[str, str]],
              network: str) -> list[Transfer]:
    payers = tuple(dict.fromkeys(script_name(script, network) for _, _, script, _ in tx.inputs))
    sender = payers[0] if payers else ""
    return [_transfer(chain, asset, tx, n, value, sender, own[script][1], None, own[script][0], payers)
            for n, (script, value) in enumerate(tx.outputs) if value and script in own]

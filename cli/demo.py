"""`chainlab demo`: a guided tour of what works, in a throwaway directory."""

from __future__ import annotations

import tempfile
import time

import click

from chain.block import Block
from chain.crypto import PrivateKey, address_to_text
from chain.devtools import block_on
from chain.genesis import Genesis
from chain.mempool import Mempool
from chain.tx import make_transfer
from consensus.pow.params import PowParams
from consensus.pow.seal import grind
from node.datadir import init_datadir, open_chain


@click.command(name="demo")
@click.option("--blocks", type=click.IntRange(1, 100), default=3, show_default=True, help="blocks to mine")
def command(blocks: int) -> None:
    """Make two keys and a genesis, sign a transfer, mine blocks at dev difficulty into a LevelDB store, print all."""
    alice, bob = PrivateKey.from_seed(b"demo/alice"), PrivateKey.from_seed(b"demo/bob")
    genesis = Genesis(chain_id="chainlab-demo", consensus="pow", balances={alice.address: 1_000_000},
                      params={"block_interval_s": 1.0}, finality_threshold=2)
    click.echo(f"alice   {address_to_text(alice.address)}  balance 1000000")
    click.echo(f"bob     {address_to_text(bob.address)}  balance 0")
    click.echo(f"genesis {genesis.hash.hex()}  (chain id {genesis.chain_id}, consensus pow, finality 2 blocks)")
    tx = make_transfer(alice, chain_id=genesis.chain_id, recipient=bob.address, amount=2500, fee=10, nonce=0)
    click.echo(f"tx      {tx.hash.hex()}  alice -> bob 2500 (fee 10), {tx.size} bytes signed")
    with tempfile.TemporaryDirectory(prefix="chainlab-demo-") as datadir:
        init_datadir(datadir, genesis)
        with open_chain(datadir, create=True) as chain:
            tree = chain.tree
            mempool = Mempool.from_genesis(genesis, tree.signatures)
            mempool.add(tx, tree.state, now=time.monotonic())
            click.echo(f"mempool {len(mempool)} transaction(s) waiting")
            target = PowParams.of(genesis).initial_target
            for _ in range(blocks):
                parent = tree.get_block(tree.tip.hash)
                assert parent is not None
                txs = mempool.template(tree.state, max_txs=100, max_bytes=100_000)
                draft, _ = block_on(tree.state, parent, txs, reward=genesis.block_reward, proposer=alice.address,
                                    timestamp_ms=parent.header.timestamp_ms + 1000)
                sealed = grind(draft.header, target)
                assert sealed is not None
                block = Block(header=sealed, txs=draft.txs)
                result = tree.add_block(block, now_ms=int(time.time() * 1000))
                mempool.on_block_connected(block, tree.state)
                click.echo(f"block   {tree.height}  {block.hash.hex()[:16]}...  {len(block.txs)} tx  "
                           f"{result.status}, final height {tree.final_height}")
            bob_account = tree.state.get(bob.address)
            alice_account = tree.state.get(alice.address)
            alice_balance, alice_nonce = (alice_account.balance, alice_account.nonce) if alice_account else (0, 0)
            bob_balance = bob_account.balance if bob_account else 0
            click.echo(f"state   alice {alice_balance} (nonce {alice_nonce}), bob {bob_balance}")
            click.echo(f"commit  {tree.state.commitment.hex()}")
    click.echo("next: `chainlab devnet` runs a real node, `make run` a 4-node testnet; `chainlab --help` lists all")

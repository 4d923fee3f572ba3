"""Byzantine validators in a testnet: which behaviours an engine has, switching one on over the admin API, and twins
(docs/TESTNET.md, "Byzantine nodes").

A behaviour is the engine's own (the spec's `byzantine_behaviours`, e.g. PBFT's equivocate or flood), switched by
the engine admin action `byzantine`; testnet.json remembers it, so a node that starts again gets it back. A twin is
a second node process holding another node's validator key (arXiv 2004.10617): its own data directory, ports and
P2P identity (`p2p.key`, so the network sees two peers), synced from the others like any new node; it is an honest
engine, and the pair, signing with one key, is one Byzantine validator. The nemesis (testnet/nemesis.py) runs
these actions under the testnet's lock; this module holds what they need and no lock of its own.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from consensus.registry import engine_names, spec_named
from node.client import RpcClient, RpcError, RpcUnavailable
from node.config import load_config, write_config, write_private_text
from node.datadir import GENESIS_FILE, DatadirError, init_datadir, read_genesis_file
from node.identity import KEY_FILE, P2P_KEY_FILE
from testnet import launcher
from testnet.state import NodeRecord, Testnet, TestnetError
from testnet.topology import neighbours

TWINS = "twins"
HONEST = "honest"
TWIN_SUFFIX = "-twin"
ADMIN_ACTION = "byzantine"
RPC_TIMEOUT_S = 5.0


def behaviours(consensus: str) -> tuple[str, ...]:
    """What `testnet byzantine --behaviour` takes on a network of this engine: the engine's behaviours, twins and
    honest; () for an engine without Byzantine behaviours."""
    own = spec_named(consensus).byzantine_behaviours
    return (*own, TWINS, HONEST) if own else ()


def check_behaviour(consensus: str, behaviour: str) -> None:
    """TestnetError (one line) unless `behaviour` is one this engine's validators can take."""
    known = behaviours(consensus)
    if not known:
        having = [name for name in engine_names() if spec_named(name).byzantine_behaviours]
        raise TestnetError(f"{consensus} has no Byzantine behaviours (engines that have: {', '.join(having)})")
    if behaviour not in known:
        raise TestnetError(f"unknown behaviour {behaviour!r} for {consensus} (known: {', '.join(known)})")


def twin_name(name: str) -> str:
    """The name of `name`'s twin."""
    return name + TWIN_SUFFIX


def switch(record: NodeRecord, behaviour: str) -> str:
    """Ask the running node to take `behaviour` (or `honest`); TestnetError with the node's refusal otherwise."""
    client = RpcClient(record.rpc_url, admin_token=record.admin_token or None, timeout_s=RPC_TIMEOUT_S)
    try:
        answer = client.engine_admin(ADMIN_ACTION, behaviour)
    except RpcError as exc:
        raise TestnetError(f"{record.name} refused behaviour {behaviour}: {exc.code}: {exc.message}") from None
    except RpcUnavailable as exc:
        raise TestnetError(f"{record.name} did not answer: {exc}") from None
    return str(answer.get(ADMIN_ACTION, behaviour))


def reapply(record: NodeRecord) -> str | None:
    """After a start: give a node its recorded behaviour again; the error (one line) when it could not be given."""
    if not record.byzantine or record.byzantine == TWINS:
        return None
    try:
        switch(record, record.byzantine)
    except TestnetError as exc:
        return str(exc)
    return None


def create_twin(testnet: Testnet, original: NodeRecord) -> NodeRecord:
    """A new (not yet started) twin of `original`: a data directory with the same genesis and validator key, a
    P2P key of its own, fresh ports and admin token, and `original`'s neighbours; added to the record with the
    topology edges of `original` and on `original`'s side of any current partition."""
    name = twin_name(original.name)
    datadir = testnet.path / name
    if datadir.exists():
        shutil.rmtree(datadir)  # a half-made directory of an earlier attempt: the twin starts from genesis
    try:
        init_datadir(datadir, read_genesis_file(Path(original.datadir) / GENESIS_FILE))
    except DatadirError as exc:
        raise TestnetError(f"cannot make {name}'s data directory: {exc}") from None
    shutil.copy2(Path(original.datadir) / KEY_FILE, datadir / KEY_FILE)  # the validator key, mode 0600
    write_private_text(datadir / P2P_KEY_FILE, secrets.token_bytes(32).hex() + "\n")
    token = secrets.token_hex(16)
    edges = [(int(a), int(b)) for a, b in testnet.edges]
    near = neighbours(edges, original.index)
    config = load_config(original.datadir).with_overrides({
        "node.name": name, "p2p.port": 0, "rpc.port": 0, "rpc.admin_token": token,
        "p2p.bootstrap": [testnet.nodes[n].p2p_url for n in near if testnet.nodes[n].p2p_url]})
    write_config(datadir, config)
    twin = NodeRecord(index=len(testnet.nodes), name=name, datadir=str(datadir),
                      log=str(testnet.path / f"{name}.log"), admin_token=token, mining=original.mining,
                      hashrate_hps=original.hashrate_hps, twin_of=original.name, byzantine=TWINS)
    twin.faults.blocked = list(original.faults.blocked)
    for record in testnet.nodes:
        if original.name in record.faults.blocked:
            record.faults.blocked = sorted([*record.faults.blocked, name])
    testnet.nodes.append(twin)
    testnet.edges.extend([n, twin.index] for n in near)
    return twin


def pin_twin_config(testnet: Testnet, twin: NodeRecord) -> None:
    """After the twin's first start: its bound ports and its neighbours, so it comes back the same way."""
    edges = [(int(a), int(b)) for a, b in testnet.edges]
    urls = [testnet.nodes[n].p2p_url for n in neighbours(edges, twin.index) if testnet.nodes[n].p2p_url]
    config = load_config(twin.datadir).with_overrides({
        "p2p.port": launcher.port_of(twin.p2p_url), "rpc.port": launcher.port_of(twin.rpc_url),
        "p2p.bootstrap": urls})
    write_config(twin.datadir, config)

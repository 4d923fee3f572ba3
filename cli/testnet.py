"""`chainlab testnet ...`: local networks of real node processes: up, attach, status, down, logs; the nemesis (kill,
stop, start, restart, pause, resume, partition, heal, netem, byzantine); load; check; scenarios (docs/TESTNET.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click

from cli.common import emit_json, fail
from cli.testnet_args import funds as _funds
from cli.testnet_args import genesis_params as _genesis_params
from cli.testnet_args import shares as _shares
from cli.testnet_args import user_errors
from consensus.registry import engine_names, spec_named
from p2p.config import P2PConfig
from testnet import launcher, live
from testnet.audit import CHECK_NAMES, SOURCES, CheckOptions, run_checks
from testnet.cells import engine_cell, engine_column, state_cell
from testnet.history import HistoryWriter
from testnet.latency import LatencyMatrix, load_matrix
from testnet.live import format_rows
from testnet.load import LoadGenerator, LoadOptions, exclusive_load
from testnet.lockload import LockLoadOptions, format_lock_load, run_lock_load
from testnet.nemesis import Nemesis
from testnet.netns import DEFAULT_SUBNET
from testnet.netns import doctor as netns_doctor
from testnet.remote import AttachOptions, attach, refuse_remote
from testnet.scenario import ManifestError, Scenario, check_attached, load_manifest, plan
from testnet.state import HISTORY_FILE, Testnet, TestnetError, load_testnet
from testnet.topology import TOPOLOGIES, parse_groups


def dir_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--dir: which testnet (default $CHAINLAB_TESTNET, else ./testnets/latest)."""
    return click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                        help="testnet directory (default: $CHAINLAB_TESTNET, else ./testnets/latest)")(function)


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--json."""
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(function)


def progress_to_stderr(message: str) -> None:
    """Progress lines go to stderr, so stdout carries only the result."""
    click.echo(message, err=True)


@click.group(name="testnet")
def command() -> None:
    """Local testnets of real node processes: bring one up, break it, load it, check it, run scenarios; or attach
    to nodes started elsewhere (`attach`) and drive them through RPC.

    Commands other than `up`, `attach` and `run` find the testnet through --dir, $CHAINLAB_TESTNET, or ./testnets/latest
    (the last testnet `up` made in its default place). NODE is a node name (node2) or index (2).
    """


@command.command(name="up")
@click.option("--nodes", type=click.IntRange(1, 64), default=4, show_default=True, help="number of nodes")
@click.option("--consensus", type=click.Choice(engine_names()), default="pow", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="testnet directory to create (default: a new one under ./testnets)")
@click.option("--topology", type=click.Choice(TOPOLOGIES), default="full", show_default=True,
              help="who dials whom")
@click.option("--hashrate-shares", metavar="S0,S1,...", help="relative hash power per node, e.g. 3,1,1 (PoW)")
@click.option("--hashrate-hps", type=click.FloatRange(1), help="total capped hash rate [default: 4000 per miner]")
@click.option("--genesis-param", "genesis_params", multiple=True, metavar="KEY=VALUE",
              help="genesis parameter, e.g. block_interval_s=1 or finality_threshold=3 (repeatable)")
@click.option("--seed", help="seed of the node and load keys (default: random)")
@click.option("--load-accounts", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="funded load accounts in genesis")
@click.option("--fund", "fund", multiple=True, metavar="WALLET_OR_ADDRESS=AMOUNT",
              help="also fund a wallet of yours (or an address) in genesis, for the tx and lock commands "
              "(repeatable)")
@click.option("--foreground", is_flag=True, help="show a live table until Ctrl-C, then take the testnet down")
@click.option("--load-tps", type=click.FloatRange(0, min_open=True), help="with --foreground: a light load")
@click.option("--trace", is_flag=True, help="every node writes a causal trace (collect with `testnet trace`)")
@click.option("--web-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="with --foreground: the dashboard's port on 127.0.0.1 (0: a free one)")
@click.option("--no-web", is_flag=True, help="with --foreground: no dashboard")
@click.option("--netns", is_flag=True, help="each node in its own network namespace on a bridge (root only); "
              "partition and netem then use the kernel")
@click.option("--subnet", default=DEFAULT_SUBNET, show_default=True, help="with --netns: the nodes' IPv4 subnet")
@click.option("--latency-matrix", "latency_matrix", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML: [regions] node = \"region\", [latency_ms] \"a-b\" = one-way ms (docs/TESTNET.md)")
@json_option
@user_errors
def up_command(nodes: int, consensus: str, directory: Path | None, topology: str, hashrate_shares: str | None,
               hashrate_hps: float | None, genesis_params: tuple[str, ...], seed: str | None, load_accounts: int,
               fund: tuple[str, ...], foreground: bool, load_tps: float | None, trace: bool, web_port: int,
               no_web: bool, netns: bool, subnet: str, latency_matrix: Path | None, as_json: bool) -> None:
    """Create and start a testnet; waits until every node answers and has its topology's peers.

    Ports are chosen by the OS, so testnets never collide. Miners run niced with capped hash rates (the genesis
    difficulty matches the total). Prints the directory; --json prints testnet.json.
    """
    if load_tps and not foreground:
        raise TestnetError("--load-tps goes with --foreground (otherwise use `chainlab testnet load`)")
    if subnet != DEFAULT_SUBNET and not netns:
        raise TestnetError("--subnet goes with --netns")
    if foreground and not no_web and web_port:
        _check_port_free("127.0.0.1", web_port, "--web-port")  # before any node starts, not after they all have
    options = launcher.UpOptions(nodes=nodes, consensus=consensus, directory=directory, topology=topology,
                                 hashrate_shares=_shares(hashrate_shares), hashrate_hps=hashrate_hps,
                                 genesis_params=_genesis_params(genesis_params), seed=seed,
                                 load_accounts=load_accounts, tie_to_launcher=foreground, trace=trace,
                                 netns=netns, subnet=subnet, funds=_funds(fund))
    # Read before anything starts: a bad matrix is refused with nothing made.
    matrix = load_matrix(latency_matrix, [f"node{i}" for i in range(nodes)]) if latency_matrix else None
    started = time.monotonic()
    if foreground:
        _exit_on_signals()  # while starting: up() stops what it started, then the command exits
    testnet = launcher.up(options, progress_to_stderr)
    if matrix is not None:
        _give_latency(testnet.path, matrix)
        testnet = load_testnet(testnet.path)
    if not foreground:
        if as_json:
            emit_json(testnet.to_json())
        else:
            click.echo(testnet.dir)
            click.echo(f"{len(testnet.nodes)} nodes up in {time.monotonic() - started:.1f} s; "
                       f"`chainlab testnet status --dir {testnet.dir}`", err=True)
        return
    summary = None
    try:
        with exclusive_load(testnet.path):
            summary = asyncio.run(live.foreground(testnet.path, load_tps=load_tps,
                                                  web_port=None if no_web else web_port, on_web=_say))
    finally:
        # Whatever ended the live table (Ctrl-C, SIGTERM, SIGHUP, a closed output pipe, an error), the nodes go
        # down before anything else is written: a write to a closed pipe must not skip this.
        _exit_on_signals()
        _say("stopping the testnet...")
        result = launcher.down(testnet.path)
    if summary is not None:
        _say(f"load: {summary['accepted']} accepted, {summary['final']} final")
    if not result["ok"]:
        fail(f"processes left after down: {result['left']}")
    _say(f"testnet down ({testnet.dir})")


def _check_port_free(host: str, port: int, option: str) -> None:
    """Refuse a port something already listens on, as a one-line error, before anything is started. The port can
    still be taken between this check and the real bind; that later error is one line too."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise TestnetError(f"{option} {port}: {host}:{port} cannot be listened on "
                               f"({exc.strerror or exc}); choose another port, or 0 for a free one") from None


def _exit_on_signals() -> None:
    """SIGTERM and SIGHUP end the command as SystemExit(128 + signal), so `finally` blocks and up()'s clean-up
    run; the nodes' parent-death signal covers a launcher that dies anyway (SIGKILL, a crash)."""
    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, exit_now)


def _say(message: str) -> None:
    """A status line on stderr; when stderr (or stdout) is a pipe whose reader has gone, it is pointed at
    /dev/null instead, so neither this line nor the interpreter's final flush fails with BrokenPipeError."""
    for stream in (sys.stdout, sys.stderr):
        if live.output_closed(stream):
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
    with contextlib.suppress(OSError):
        click.echo(message, err=True)


@command.command(name="status")
@dir_option
@json_option
@user_errors
def status_command(directory: Path | None, as_json: bool) -> None:
    """Each node's process state and, when it answers, height, head, final height, peers, mempool and mining."""
    path = launcher.resolve_directory(directory)
    view = launcher.status(path)
    if as_json:
        emit_json(view)
        return
    testnet = load_testnet(path)
    rows = [("NODE", "STATE", "PID", "HEIGHT", "HEAD", "FINAL", "PEERS", "MEMPOOL", engine_column(testnet.consensus),
             "RPC")]
    for entry in view["nodes"]:
        status = entry["status"]
        cells = ((str(status["height"]), str(status["head"])[:12], str(status["final_height"]), str(status["peers"]),
                  str(status["mempool_size"])) if status else ("-",) * 5)
        pid = "remote" if entry.get("remote") else str(entry["pid"] or "-")
        rows.append((entry["name"], state_cell(entry["state"], status), pid, *cells,
                     engine_cell(testnet.consensus, status), entry["rpc_url"]))
    click.echo(f"testnet {view['dir']}  chain {view['chain_id']}  {view['consensus']}  {view['topology']}")
    for line in format_rows(rows, left={0, 1, 4, 8, 9}):
        click.echo(line)


@command.command(name="attach")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="testnet directory to write (its testnet.json must not exist yet)")
@click.option("--rpc", "rpc_urls", required=True, metavar="URL[,URL...]",
              help="the nodes' RPC URLs, e.g. http://10.0.0.5:8545,http://10.0.0.6:8545 (repeatable)",
              multiple=True)
@click.option("--admin-token-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="the admin token of every node, or lines of `NAME TOKEN` (one per node)")
@click.option("--name-prefix", default="node", show_default=True, help="nodes are named PREFIX0, PREFIX1, ...")
@click.option("--seed", default="", help="the seed whose load accounts the genesis funds (`testnet up --seed`), "
                                         "for `testnet load`")
@json_option
@user_errors
def attach_command(directory: Path, rpc_urls: tuple[str, ...], admin_token_file: Path, name_prefix: str, seed: str,
                   as_json: bool) -> None:
    """Drive nodes this machine did not start (docs/TESTNET.md, "Attaching to a network the toolkit did not
    start"): check that each URL answers, that they share one genesis and that the admin token opens them, then
    write DIR/testnet.json. status, partition, heal, netem, byzantine, load, check, web and the live table then
    work on them; kill, stop, start, restart, pause, resume, logs and twins are refused for them (they need a
    local process); down forgets them without touching them."""
    urls = [part for entry in rpc_urls for part in entry.split(",")]
    testnet = attach(AttachOptions(directory=directory, rpc_urls=urls, admin_token_file=admin_token_file,
                                   name_prefix=name_prefix, seed=seed))
    if as_json:
        emit_json({**testnet.to_json(), "nodes": [{**n.to_json(), "admin_token": "***"} for n in testnet.nodes]})
        return
    click.echo(testnet.dir)
    click.echo(f"attached {len(testnet.nodes)} {testnet.consensus} nodes of chain {testnet.chain_id} "
               f"({', '.join(n.name for n in testnet.nodes)}; {len(testnet.edges)} connections"
               + (f"; {testnet.load_accounts} load accounts" if seed else "; no --seed: no load accounts")
               + f"); `chainlab testnet status --dir {testnet.dir}`", err=True)


@command.command(name="down")
@dir_option
@click.option("--timeout-s", type=click.FloatRange(0), default=10.0, show_default=True,
              help="seconds to wait after SIGTERM before SIGKILL")
@json_option
@user_errors
def down_command(directory: Path | None, timeout_s: float, as_json: bool) -> None:
    """Stop every node: SIGTERM, SIGKILL after the timeout; fails if any process of a node is left. Remote nodes
    (`testnet attach`) are not touched: the testnet forgets them (an attached testnet loses its testnet.json)."""
    result = launcher.down(launcher.resolve_directory(directory), timeout_s)
    if as_json:
        emit_json(result)
    else:
        for entry in result["nodes"]:
            click.echo(f"{entry['node']}: {entry['outcome']}" + (f" (pid {entry['pid']})" if entry["pid"] else ""))
            if entry.get("faults_left"):
                click.echo(f"note  {entry['node']} keeps the faults the nemesis gave it "
                           f"({json.dumps(entry['faults_left'], sort_keys=True)}); attach again and `heal` to clear "
                           "them", err=True)
        if result.get("forgotten"):
            click.echo(f"forgot the attached testnet in {result['dir']}; its nodes run on as they were", err=True)
    if result.get("netns", {}).get("failures"):
        fail(f"network namespaces not removed: {'; '.join(result['netns']['failures'])} "
             "(`chainlab testnet doctor --fix`)")
    if not result["ok"]:
        fail(f"processes left: {result['left']}")


@command.command(name="doctor")
@click.option("--fix", is_flag=True, help="remove the leftovers (namespaces with no process in them, and their "
              "links and bridge)")
@json_option
@user_errors
def doctor_command(fix: bool, as_json: bool) -> None:
    """List the network namespaces, veth links and bridges of --netns testnets on this host (names cl-ID-...);
    those with no process inside are leftovers of a launcher that died, and --fix removes them."""
    result = netns_doctor(fix=fix)
    if as_json:
        emit_json(result)
    else:
        if not result["groups"]:
            click.echo("no network namespaces or links of chainlab testnets on this host")
        for group in result["groups"]:
            where = f" (testnet {group['dir']})" if group["dir"] else ""
            state = (f"in use, pids {' '.join(map(str, group['pids']))}" if group["pids"]
                     else "removed" if group["removed"] else "leftover")
            click.echo(f"cl-{group['id']}{where}: {state}; {len(group['namespaces'])} namespaces, "
                       f"links {' '.join(group['links']) or '-'}")
        if result["leftovers"] and not fix:
            click.echo("`chainlab testnet doctor --fix` removes the leftovers", err=True)
    if result["failures"]:
        fail("could not remove: " + "; ".join(result["failures"]))


@command.command(name="logs")
@click.argument("node")
@dir_option
@click.option("-f", "--follow", is_flag=True, help="keep printing new lines until Ctrl-C")
@click.option("-n", "--lines", type=click.IntRange(0), default=50, show_default=True, help="last lines to show")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON object per line with the node's name (a JSON log record keeps its fields; a text "
              "line is {\"node\", \"line\"})")
@user_errors
def logs_command(node: str, directory: Path | None, follow: bool, lines: int, as_json: bool) -> None:
    """Print a node's log (its last lines; -f follows it)."""
    record = load_testnet(launcher.resolve_directory(directory)).node(node)
    refuse_remote([record], "logs", "a log file on this machine")
    path = Path(record.log)
    if not path.exists():
        raise TestnetError(f"{record.name} has no log yet ({path})")

    def echo(line: str) -> None:
        click.echo(_log_json(record.name, line) if as_json else line, nl=False)

    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream.readlines()[-lines:] if lines else []:
            echo(line)
        try:
            while follow:
                line = stream.readline()
                if line:
                    echo(line)
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass


def _log_json(node_name: str, line: str) -> str:
    """A log line as one JSON line naming its node: a JSON record (log_format json) keeps its fields."""
    text = line.rstrip("\n")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    entry: dict[str, Any] = {**parsed, "node": node_name} if isinstance(parsed, dict) else {"node": node_name,
                                                                                              "line": text}
    return json.dumps(entry, sort_keys=True) + "\n"


def _give_latency(path: Path, matrix: LatencyMatrix) -> None:
    """The matrix on a testnet `up` just started; if a node cannot take it (a kernel without netem), the testnet is
    taken down again and the one-line error says why: a network without the latency asked for proves nothing."""
    event = Nemesis(path).latency(matrix)
    failures = event["detail"].get("failures")
    if failures:
        launcher.down(path)
        reasons = "; ".join(dict.fromkeys(failures.values()))
        raise TestnetError(f"the latency matrix could not be applied ({', '.join(failures)}: {reasons}); the "
                           "testnet was taken down")
    pairs = ", ".join(f"{pair} {ms:g} ms" for pair, ms in event["detail"]["latency_ms"].items())
    progress_to_stderr(f"latency matrix: {len(set(matrix.regions.values()))} regions ({pairs or 'no delays'})")


@command.command(name="latency")
@click.argument("matrix_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--clear", is_flag=True, help="take the latency matrix away")
@dir_option
@json_option
@user_errors
def latency_command(matrix_file: Path | None, clear: bool, directory: Path | None, as_json: bool) -> None:
    """Give a running testnet a latency matrix (MATRIX_FILE, as `up --latency-matrix`) or take it away (--clear):
    every node's traffic to each peer is delayed by the one-way delay between their regions. `heal` keeps it."""
    if clear == (matrix_file is not None):
        raise TestnetError("give a matrix file or --clear (one of them)")
    path = launcher.resolve_directory(directory)
    matrix = None
    if matrix_file is not None:
        matrix = load_matrix(matrix_file, [record.name for record in load_testnet(path).nodes])
    _emit_event(Nemesis(path).latency(matrix), as_json)


def _emit_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(event)
        return
    detail = {k: v for k, v in event["detail"].items() if v not in (None, {}, [], False)}
    click.echo(f"{event['time']} {event['action']} {' '.join(event['nodes'])}"
               + (f" {json.dumps(detail, sort_keys=True)}" if detail else ""))
    failures = event["detail"].get("failures")
    if failures:
        # A failure is an unreachable node, a node that refused the change, or (--netns) the kernel refusing it,
        # e.g. one without netem: name the action, not "could not reach", which sends users after the network.
        reasons = list(dict.fromkeys(failures.values()))  # a kernel without netem fails alike on every node
        fail(f"{event['action']} failed on {', '.join(failures)}: {'; '.join(reasons)}")


def _note_deferred(path: Path, event: dict[str, Any], as_json: bool) -> None:
    """A partition, heal or netem reaches only running nodes; say (on stderr) which nodes will get theirs when
    they start, so a user who partitioned a stopped testnet is not left thinking it is cut."""
    testnet = load_testnet(path)
    if testnet.netns_id:
        return  # the kernel applied them: a namespace does not need its node running
    waiting = [record.name for record in testnet.nodes
               if record.name in event["nodes"] and record.state != "running"]
    if waiting and not as_json:
        click.echo(f"note  not running: {', '.join(waiting)}; they get these faults when they start", err=True)


def _node_action(name: str, help_text: str) -> None:
    @command.command(name=name, help=help_text)
    @click.argument("node")
    @dir_option
    @json_option
    @user_errors
    def action(node: str, directory: Path | None, as_json: bool) -> None:
        nemesis = Nemesis(launcher.resolve_directory(directory))
        _emit_event(getattr(nemesis, name)(node), as_json)


_node_action("kill", "SIGKILL a node and its workers (a crash).")
_node_action("stop", "Stop a node gracefully (SIGTERM; SIGKILL after 10 s).")
_node_action("start", "Start a stopped or killed node again (same ports, same neighbours, its recorded faults).")
_node_action("pause", "SIGSTOP a node's processes: it freezes, its peers time it out.")
_node_action("resume", "SIGCONT a paused node.")


@command.command(name="restart")
@click.argument("node")
@dir_option
@click.option("--hard", is_flag=True, help="SIGKILL instead of a graceful stop")
@json_option
@user_errors
def restart_command(node: str, directory: Path | None, hard: bool, as_json: bool) -> None:
    """Stop (or --hard: kill) a node and start it again."""
    _emit_event(Nemesis(launcher.resolve_directory(directory)).restart(node, hard=hard), as_json)


@command.command(name="partition")
@click.argument("groups", nargs=-1)
@click.option("--shape", help="halves | isolate:NODE | bridge | majorities-ring | minority-third")
@dir_option
@json_option
@user_errors
def partition_command(groups: tuple[str, ...], shape: str | None, directory: Path | None, as_json: bool) -> None:
    """Cut the network: GROUPS like `0,1 2,3,4` (each node blocks every node outside its group), or --shape.

    Replaces any current partition; netem settings stay.
    """
    path = launcher.resolve_directory(directory)
    if bool(groups) == bool(shape):
        raise TestnetError("give either groups (e.g. `0,1 2,3,4`) or --shape")
    nemesis = Nemesis(path)
    if shape:
        if shape.startswith("isolate:"):
            shape = f"isolate:{load_testnet(path).index_of(shape.split(':', 1)[1])}"
        event = nemesis.partition(shape=shape)
    else:
        testnet = load_testnet(path)
        event = nemesis.partition(groups=parse_groups(groups, testnet.index_of))
    _emit_event(event, as_json)
    _note_deferred(path, event, as_json)


@command.command(name="heal")
@dir_option
@click.option("--partition-only", is_flag=True, help="clear the partition, keep netem")
@click.option("--netem-only", is_flag=True, help="clear netem, keep the partition")
@json_option
@user_errors
def heal_command(directory: Path | None, partition_only: bool, netem_only: bool, as_json: bool) -> None:
    """Clear the partition and netem on every node."""
    if partition_only and netem_only:
        raise TestnetError("--partition-only and --netem-only exclude each other")
    path = launcher.resolve_directory(directory)
    event = Nemesis(path).heal(partition=not netem_only, netem=not partition_only)
    _emit_event(event, as_json)
    _note_deferred(path, event, as_json)


@command.command(name="netem")
@dir_option
@click.option("--nodes", help="nodes to affect, e.g. 0,2 (default: all)")
@click.option("--delay-ms", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--jitter-ms", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--loss", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="drop probability")
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="duplication probability")
@click.option("--reorder", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="--netns only: probability that a packet skips the delay (needs --delay-ms)")
@click.option("--rate-kbit", type=click.FloatRange(0), default=0.0, show_default=True,
              help="--netns only: the link's rate in kbit/s (0: unlimited)")
@json_option
@user_errors
def netem_command(directory: Path | None, nodes: str | None, delay_ms: float, jitter_ms: float, loss: float,
                  duplicate: float, reorder: float, rate_kbit: float, as_json: bool) -> None:
    """Delay (+- jitter), drop and duplicate the nodes' outgoing P2P frames; all zeros clears. Keeps partitions.

    On a --netns testnet the kernel does it (tc netem on each node's link, every packet but the toolkit's RPC),
    and can also reorder packets and limit the rate."""
    refs = [part.strip() for part in nodes.split(",") if part.strip()] if nodes else None
    path = launcher.resolve_directory(directory)
    event = Nemesis(path).netem(refs, delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss, duplicate=duplicate,
                                reorder=reorder, rate_kbit=rate_kbit)
    _emit_event(event, as_json)
    _note_deferred(path, event, as_json)


@command.command(name="byzantine")
@click.argument("node")
@click.option("--behaviour", required=True, metavar="B",
              help="one of the engine's behaviours (PBFT: equivocate, silent, withhold-commits, bad-signatures, "
                   "stale-view-change, flood), twins (a second process with NODE's validator key), or honest")
@dir_option
@json_option
@user_errors
def byzantine_command(node: str, behaviour: str, directory: Path | None, as_json: bool) -> None:
    """Make a validator Byzantine (docs/TESTNET.md, "Byzantine nodes"): it keeps the honest protocol inside and lies
    on the wire one way; `twins` starts NODE-twin, a second node holding NODE's validator key; `honest` turns the
    behaviour off and stops a twin. Remembered: a node that starts again gets its behaviour back, and `testnet
    check` judges only the honest nodes."""
    path = launcher.resolve_directory(directory)
    event = Nemesis(path).byzantine(node, behaviour)
    _emit_event(event, as_json)
    was = event["detail"].get("was")
    if not as_json and was in spec_named(load_testnet(path).consensus).byzantine_banned:
        click.echo(f"note  {event['nodes'][0]}'s peers banned it for its {was} (for {P2PConfig().ban_s:g} s): "
                   "honest again, it stays cut off from them until the bans expire or those peers restart (a "
                   "restarted node forgets the bans it held)", err=True)


@command.command(name="load")
@dir_option
@click.option("--workload", type=click.Choice(["transfer", "lock"]), default="transfer", show_default=True,
              help="transfer: signed transfers at --tps; lock: closed-loop clients (--accounts, default 8) competing "
                   "for --locks locks through the fenced register, some pausing past their lease")
@click.option("--tps", type=click.FloatRange(0, min_open=True), help="target transactions/s (transfer workload)")
@click.option("--duration", "duration_s", type=click.FloatRange(0, min_open=True), required=True,
              help="seconds of sending")
@click.option("--accounts", type=click.IntRange(1), help="load accounts to send from (default: all)")
@click.option("--nodes", help="nodes to send to, e.g. 0,1 (default: all, round-robin)")
@click.option("--settle-timeout-s", type=click.FloatRange(0), help="max wait for finality after sending")
@click.option("--seed", type=int, help="seed of recipients and amounts")
@click.option("--reads", "reads", metavar="LEVEL[,LEVEL...]",
              help="also read accounts at these levels: latest, final, linearizable (a share --read-ratio of the "
                   "operations)")
@click.option("--read-ratio", type=float, default=0.5, show_default=True,
              help="with --reads: the share of operations that are reads, 0 <= R < 1")
@click.option("--sink/--no-sink", "sink", default=None,
              help="send to sink accounts so that each load account changes only by its own transfers "
                   "(default: on with --reads)")
@click.option("--locks", type=click.IntRange(1, 1024), default=2, show_default=True, help="lock workload: locks")
@click.option("--lease-blocks", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="lock workload: lease of each grant")
@click.option("--pause-chance", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="lock workload: chance a holder pauses 1.5 leases before a write (then writes with its old token)")
@json_option
@user_errors
def load_command(directory: Path | None, workload: str, tps: float | None, duration_s: float, accounts: int | None,
                 nodes: str | None, settle_timeout_s: float | None, seed: int | None, reads: str | None,
                 read_ratio: float, sink: bool | None, locks: int, lease_blocks: int, pause_chance: float,
                 as_json: bool) -> None:
    """Send signed transfers at TPS for DURATION seconds (and with --reads, read accounts too), record every
    operation in history.jsonl, wait for finality, and report counts and latencies to inclusion and finality.
    `chainlab check consistency DIR/history.jsonl` then judges the reads. With --workload lock, run lock clients
    for DURATION seconds instead; `chainlab testnet check` (locks) then judges the chain."""
    path = launcher.resolve_directory(directory)
    testnet = load_testnet(path)
    if workload == "lock":
        _lock_load(testnet, LockLoadOptions(duration_s=duration_s, clients=accounts or 8, locks=locks,
                                            lease_blocks=lease_blocks, pause_chance=pause_chance, seed=seed or 0),
                   as_json)
        return
    if tps is None:
        raise TestnetError("--tps is required for the transfer workload")
    levels = tuple(level.strip() for level in reads.split(",") if level.strip()) if reads else ()
    if reads is not None and not levels:
        raise TestnetError("--reads needs at least one level: latest, final or linearizable")
    options = LoadOptions(tps=tps, duration_s=duration_s, accounts=accounts, seed=seed,
                          nodes=[p.strip() for p in nodes.split(",") if p.strip()] if nodes else None,
                          settle_timeout_s=settle_timeout_s, reads=levels,
                          read_ratio=read_ratio if levels else 0.0, sink=sink)
    with exclusive_load(path):
        history = HistoryWriter(path / HISTORY_FILE)
        try:
            generator = LoadGenerator(testnet, options, history)
            summary = asyncio.run(_load_with_progress(generator, interactive=sys.stderr.isatty() and not as_json))
        finally:
            history.close()
    if as_json:
        emit_json(summary)
    else:
        _print_load_summary(summary)
    # The summary is printed either way; the exit status tells a script whether the load did its job.
    if summary["submitted"] and not summary["accepted"]:
        fail("no transaction was accepted (see rejections: is any node running and reachable?)")
    if summary["accepted_not_final"]:
        fail(f"{summary['accepted_not_final']} accepted transactions did not become final within the settle timeout")


def _lock_load(testnet: Testnet, options: LockLoadOptions, as_json: bool) -> None:
    with exclusive_load(Path(testnet.dir)):
        summary = asyncio.run(run_lock_load(testnet, options))
    if as_json:
        emit_json(summary)
    else:
        for line in format_lock_load(summary):
            click.echo(line)
    if not summary["lock_ops"]:
        fail("no lock operation became final (is any node running and reachable?)")


def _print_load_summary(summary: dict[str, Any]) -> None:
    latency = summary["latency_ms"]
    click.echo(f"sent {summary['submitted']} in {summary['duration_s']:.1f} s: {summary['accepted']} accepted "
               f"({summary['accepted_tps']} tx/s), {summary['rejected']} rejected, {summary['unknown']} unknown")
    click.echo(f"included {summary['included']}, final {summary['final']}, accepted but not final "
               f"{summary['accepted_not_final']}")
    click.echo(f"latency to inclusion p50 {latency['inclusion_p50']} ms p99 {latency['inclusion_p99']} ms; "
               f"to finality p50 {latency['final_p50']} ms p99 {latency['final_p99']} ms")
    if summary["rejections"]:
        click.echo("rejections: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["rejections"].items())))
    reads = summary.get("reads") or {}
    if reads.get("total"):
        errors = ", ".join(f"{k} {v}" for k, v in sorted(reads["errors"].items()))
        click.echo(f"reads at {','.join(reads['levels'])}: {reads['total']} ({reads['ok']} answered, {reads['failed']} "
                   f"refused, {reads['unknown']} unknown){'; refusals: ' + errors if errors else ''}")


async def _load_with_progress(generator: LoadGenerator, *, interactive: bool) -> dict[str, Any]:
    task = asyncio.ensure_future(generator.run())
    while interactive and not task.done():
        await asyncio.wait({task}, timeout=1.0)
        counts = generator.counts
        click.echo(f"\rsent {counts.submitted}  accepted {counts.accepted}  rejected {counts.failed}  included "
                   f"{counts.included}  final {counts.final}   ", err=True, nl=False)
    result = await task
    if interactive:
        click.echo("", err=True)
    return result


@command.command(name="web")
@dir_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (the page is read-only, but it shows the whole testnet: keep it local)")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0: a free port")
@click.option("--open", "open_browser", is_flag=True, help="open the page in the default browser")
@user_errors
def web_command(directory: Path | None, host: str, port: int, open_browser: bool) -> None:
    """Serve the testnet dashboard until Ctrl-C: every node's state and head, the union of their block trees with
    each node's head and final block, the partition groups and netem, the nemesis events as they happen, the load
    figures and the last `testnet check` (docs/DASHBOARD.md). Prints its URL; works on a running testnet and, from
    its files, after `down`."""
    from testnet.dashboard import serve

    root = launcher.resolve_directory(directory)

    def ready(url: str) -> None:
        click.echo(url)
        click.echo(f"dashboard of {root}; Ctrl-C stops it", err=True)
        if open_browser:
            import webbrowser

            if not webbrowser.open(url):
                click.echo("note  no browser could be opened; open the URL above", err=True)

    asyncio.run(serve(root, host=host, port=port, on_ready=ready))


@command.command(name="trace")
@dir_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the merged trace [default: DIR/trace.jsonl]")
@json_option
@user_errors
def trace_command(directory: Path | None, out_path: Path | None, as_json: bool) -> None:
    """Gather the causal traces of every node (`testnet up --trace`) into one file for `chainlab trace`; the
    testnet's events.jsonl goes beside it as OUT.events.jsonl, so diagrams shade the faults. Works while the
    testnet runs and after `down`."""
    from testnet.tracecollect import collect

    root = launcher.resolve_directory(directory)
    result = collect(root, out_path or root / "trace.jsonl")
    if as_json:
        emit_json(result)
        return
    per_node = ", ".join(f"{name} {count}" for name, count in result["per_node"].items())
    click.echo(f"{result['events']} events ({per_node}) -> {result['out']}")
    for name, why in result["missing"].items():
        click.echo(f"note  {name}: {why}", err=True)
    click.echo(f"next: chainlab trace concurrent {result['out']} --what block-mined --same height\n"
               f"      chainlab trace diagram {result['out']} --out diagram.html", err=True)


@command.command(name="check")
@dir_option
@click.option("--converge-timeout-s", type=click.FloatRange(0), default=30.0, show_default=True,
              help="how long tips may take to converge")
@click.option("--source", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="auto: RPC of running nodes, stores of stopped ones")
@click.option("--only", "only", multiple=True, type=click.Choice(CHECK_NAMES), help="run only these checks")
@json_option
@user_errors
def check_command(directory: Path | None, converge_timeout_s: float, source: str, only: tuple[str, ...],
                  as_json: bool) -> None:
    """Safety and liveness checks; exit 1 if any fails. Works on a running testnet and after `down`."""
    result = run_checks(launcher.resolve_directory(directory),
                        CheckOptions(checks=list(only) or CHECK_NAMES, source=source,
                                     converge_timeout_s=converge_timeout_s))
    if as_json:
        emit_json(result)
    else:
        for check in result["checks"]:
            click.echo(f"{'ok  ' if check['ok'] else 'FAIL'}  {check['name']}: {check['detail']}")
        _print_excluded(result.get("excluded") or {}, result.get("beyond_f"))
        _print_trace_links(result.get("trace") or {})
        unread = {k: v for k, v in result["sources"].items() if v not in ("rpc", "store")}
        for name, why in unread.items():
            click.echo(f"note  {name}: {why}", err=True)
    if not result["ok"]:
        sys.exit(1)


def _print_excluded(excluded: dict[str, str], beyond_f: dict[str, int] | None = None) -> None:
    """The nodes the checks left out, and why (Byzantine ones: the checks judge honest nodes); and a warning when
    more validators are Byzantine than the engine tolerates, where a pass proves nothing."""
    if excluded:
        listing = "; ".join(f"{name} ({why})" for name, why in excluded.items())
        click.echo(f"note  not judged, Byzantine: {listing}; the checks apply to the honest nodes")
    if beyond_f:
        click.echo(f"note  {beyond_f['byzantine']} of {beyond_f['validators']} validators are Byzantine, more than "
                   f"f = {beyond_f['f']}: the engine promises neither safety nor liveness, so passing checks prove "
                   "nothing (the certificate oracle names what broke, if anything did)")


def _print_trace_links(links: dict[str, Any]) -> None:
    """The trace events of each failure, and the commands that show them (docs/TRACING.md)."""
    if "error" in links:
        click.echo(f"trace  cannot read the nodes' traces: {links['error']}")
        return
    for name, found in links.items():
        click.echo(f"trace  {name}: " + "; ".join(found["events"]))
        if "made" in found:
            click.echo(f"trace  {name}: {found['made']}")
        for command_line in found["commands"]:
            click.echo(f"       {command_line}")


def shipped_scenarios() -> dict[str, Path]:
    """The scenarios shipped in testnet/scenarios, by name."""
    folder = resources.files("testnet").joinpath("scenarios")
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml")}


def _find_scenario(text: str) -> Scenario:
    path = Path(text)
    if not path.exists():
        shipped = shipped_scenarios()
        if text not in shipped:
            raise ManifestError(f"no scenario file {text!r} and no shipped scenario of that name (shipped: "
                                f"{', '.join(sorted(shipped))})")
        path = shipped[text]
    return load_manifest(path)


@command.command(name="scenarios")
@json_option
def scenarios_command(as_json: bool) -> None:
    """List the shipped scenarios (run one with `chainlab testnet run NAME`)."""
    entries = []
    for name, path in sorted(shipped_scenarios().items()):
        try:
            description = load_manifest(path).description
        except ManifestError as exc:
            description = f"(invalid: {exc})"
        entries.append({"name": name, "path": str(path), "description": description})
    if as_json:
        emit_json(entries)
    else:
        for entry in entries:
            click.echo(f"{entry['name']:28} {entry['description']}")


@command.command(name="run")
@click.argument("scenario")
@click.option("--seed", type=click.IntRange(0), help="seed of every random choice (default: the manifest's, else "
                                                     "random; printed)")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="testnet directory (default: a new one under ./testnets)")
@click.option("--dry-run", is_flag=True, help="print the plan (random steps drawn) without running it")
@json_option
@user_errors
def run_command(scenario: str, seed: int | None, directory: Path | None, dry_run: bool, as_json: bool) -> None:
    """Run a scenario manifest (a file, or a shipped scenario's name) end to end and write <dir>/report.json;
    exit 1 if a step or check failed. A manifest with `expect = "fail"` (a demonstration) exits 0 when it failed
    as expected. The testnet is always taken down; with a --dir from `testnet attach`, the run drives that network
    instead, heals it at the end and leaves it running."""
    from testnet.runner import attached_network, choose_seed, run_scenario

    manifest = _find_scenario(scenario)
    attached = attached_network(directory)
    if attached is not None:
        check_attached(manifest, attached)  # refused here, in one line, before anything runs
    chosen = choose_seed(manifest, seed)
    if dry_run:
        steps = [step.to_json() for step in plan(manifest, chosen)]
        if as_json:
            emit_json({"scenario": manifest.name, "seed": chosen, "plan": steps})
        else:
            click.echo(f"SEED={chosen}")
            for step in steps:
                click.echo(json.dumps(step, sort_keys=True))
        return
    click.echo(f"scenario {manifest.name}  SEED={chosen}", err=True)
    run = run_scenario(manifest, chosen, directory, progress_to_stderr)
    report = run.report()
    if as_json:
        emit_json(report)
    else:
        for source, result in report["checks"].items():
            for check in result["checks"]:
                click.echo(f"{'ok  ' if check['ok'] else 'FAIL'}  [{source}] {check['name']}: {check['detail']}")
        judged: dict[str, Any] = next((r for r in report["checks"].values() if r.get("excluded")), {})
        _print_excluded(judged.get("excluded") or {}, judged.get("beyond_f"))
        failed_steps = [s for s in report["steps"] if not s["ok"]]
        for step in failed_steps:
            click.echo(f"FAIL  step {step['index']} {json.dumps(step['step'], sort_keys=True)}: {step['detail']}")
        verdict = "PASS" if report["ok"] else "FAIL"
        if report["expect"] == "fail":
            verdict = "FAILED AS EXPECTED" if report["as_expected"] else (
                "PASSED, BUT EXPECTED TO FAIL" if report["ok"] else "FAIL (not the expected failure)")
            for name, detail in report["expected_failures"].items():
                click.echo(f"expected failure  {name}: {detail}")
        click.echo(f"{verdict}  {manifest.name} SEED={chosen} in {report['duration_s']:.0f} s; "
                   f"report {report['dir']}/report.json")
    if report["error"]:
        fail(f"scenario {manifest.name} (SEED={chosen}): {report['error']}")
    if not report["as_expected"]:
        sys.exit(1)


@command.command(name="cap")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="where the two testnets go, as DIR/raft and DIR/pow (default: a new one under ./testnets)")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True, help="seed of both scenarios")
@click.option("--engine", "engines", multiple=True, type=click.Choice(["raft", "pow"]),
              help="run only this half (repeatable; default: both)")
@json_option
@user_errors
def cap_command(directory: Path | None, seed: int, engines: tuple[str, ...], as_json: bool) -> None:
    """CAP, side by side: a Raft and a PoW network through the same 3 | 2 partition with the same transfers and
    reads (latest, final, linearizable), then one table per side of the partition: writes accepted, reads
    answered, staleness, and the linearizability checker's verdict per read level. About 20 s per engine."""
    from testnet.cap import CAP_ENGINES, run_cap

    target = directory or launcher.default_directory(f"cap-{seed}")
    result = run_cap(target, seed, progress_to_stderr, engines or CAP_ENGINES)
    if as_json:
        emit_json(result)
    else:
        _print_cap(result)
    errors = [f"{engine}: {run['error'] or 'failed ' + ', '.join(run['failed'])}"
              for engine, run in result["runs"].items() if run["error"] or not run["ok"]]
    if errors:
        fail("; ".join(errors))


def _print_cap(result: dict[str, Any]) -> None:
    levels = ("latest", "final", "linearizable")
    click.echo("During the partition (operations invoked between the partition and the heal):")
    header = f"{'engine':7} {'side':9} {'nodes':20} {'writes ok':>10}" + "".join(
        f"{'reads ' + level[:3]:>12}{'stale':>6}" for level in levels)
    click.echo(header)
    for row in result["rows"]:
        writes = f"{row['writes']['accepted']}/{row['writes']['sent']}"
        cells = ""
        for level in levels:
            read = row["reads"].get(level)
            shown = f"{read['answered']}/{read['sent']}" if read else "-"
            cells += f"{shown:>12}{read['stale'] if read else '-':>6}"
        click.echo(f"{row['engine']:7} {row['side']:9} {','.join(row['nodes']):20} {writes:>10}{cells}")
    click.echo("\nLinearizability checker on the reads each side served over the whole run (with every transfer):")
    click.echo(f"{'engine':7} {'side':9} " + "".join(f"{level:>18}" for level in levels))
    for row in result["rows"]:
        click.echo(f"{row['engine']:7} {row['side']:9} " + "".join(
            f"{row['reads'].get(level, {}).get('linearizable', '-'):>18}" for level in levels))
    click.echo("\nRefusals during the partition:")
    for row in result["rows"]:
        refusals = {f"write {code}": count for code, count in row["writes"]["errors"].items()}
        for level in levels:
            for code, count in row["reads"].get(level, {}).get("errors", {}).items():
                refusals[f"{level} read {code}"] = count
        shown = ", ".join(f"{code} {count}" for code, count in sorted(refusals.items())) or "none"
        click.echo(f"  {row['engine']} {row['side']}: {shown}")
    for engine, verdict in result["final_monotonic"].items():
        click.echo(f"{engine}: final reads monotonic in every session: {verdict}")
    for engine, run in result["runs"].items():
        status = "ok" if run["ok"] else f"FAILED ({', '.join(run['failed']) or run['error']})"
        click.echo(f"{engine}: scenario {status}; history {run['dir']}/history.jsonl; report {run.get('report', '-')}")


def _add_render_command() -> None:
    from cli.render import command as render_command

    command.add_command(render_command)


_add_render_command()

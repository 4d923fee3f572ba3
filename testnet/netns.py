"""Network namespaces for a testnet on one host (`testnet up --netns`; docs/TESTNET.md, "Network namespaces").

Each node runs in its own namespace `cl-<id>-node<i>` whose `eth0` is one end of a veth pair; the other end,
`cl-<id>-v<i>`, is a port of the bridge `cl-<id>-br` in the root namespace, which holds the subnet's first address
(the toolkit reaches the nodes' RPC from there). Partitions are blackhole routes inside the blocking node's
namespace; netem is a `tc netem` qdisc on the node's `eth0`, under an htb root whose filter keeps traffic to the
bridge address (the toolkit's RPC) out of it, so `testnet check` is not slowed or lost by the faults it checks; a
latency matrix adds one class per destination, chosen by its address, with its own netem delay.

The builders (`*_commands`) are pure: they return the `ip`/`tc` argv lists, and `run_commands` runs them. Every
name starts with `cl-<6 hex digits>-`, so `testnet doctor` finds what a dead launcher left behind; a small
registry in /run/chainlab/netns (tmpfs, gone at reboot like the namespaces) maps each id to its testnet directory.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testnet import procs
from testnet.state import Faults, TestnetError

PREFIX = "cl-"
NAME_PATTERN = re.compile(r"^cl-([0-9a-f]{6})-(node\d+|v\d+|br)$")
DEFAULT_SUBNET = "10.77.0.0/24"
DEVICE = "eth0"  # the node's end of its veth pair, inside its namespace
REGISTRY_DIR = Path("/run/chainlab/netns")
COMMAND_TIMEOUT_S = 10.0
# htb classes: 1:10 carries traffic to the bridge address (no faults), 1:20 everything else (rate, then netem).
UNLIMITED_RATE = "10gbit"
UNLIMITED_KBIT = 10_000_000
PEER_CLASS_BASE = 0x100  # a latency matrix's class for destination j is 1:<0x100 + j> (tc reads minors in hex)
HTB_QUANTUM = "1514"  # one full frame per round; htb's default (rate / r2q) is too big at 10gbit and warns
Argv = list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class NetnsPlan:
    """The names and addresses of one testnet's namespaces; derived from its id, subnet and node count only."""

    testnet_id: str
    subnet: str
    nodes: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{6}", self.testnet_id):
            raise TestnetError(f"netns id {self.testnet_id!r}: want 6 hex digits")
        network = _network(self.subnet)
        if network.num_addresses - 2 < self.nodes + 1:
            raise TestnetError(f"--subnet {self.subnet}: too small for a bridge address and {self.nodes} nodes")

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The subnet as an ipaddress network."""
        return _network(self.subnet)

    @property
    def bridge(self) -> str:
        """The bridge in the root namespace."""
        return f"{PREFIX}{self.testnet_id}-br"

    @property
    def gateway(self) -> str:
        """The bridge's address: where the toolkit's RPC calls come from."""
        return str(self.network.network_address + 1)

    def namespace(self, index: int) -> str:
        """Node `index`'s namespace."""
        return f"{PREFIX}{self.testnet_id}-node{index}"

    def host_link(self, index: int) -> str:
        """The root-namespace end of node `index`'s veth pair (a bridge port)."""
        return f"{PREFIX}{self.testnet_id}-v{index}"

    def ip(self, index: int) -> str:
        """Node `index`'s address."""
        return str(self.network.network_address + 2 + index)


def _network(subnet: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise TestnetError(f"--subnet {subnet!r}: {exc} (give an IPv4 network such as {DEFAULT_SUBNET})") from None
    return network


@dataclass(frozen=True, slots=True, kw_only=True)
class Netem:
    """What `tc netem` does to a node's outgoing packets (zeros: nothing)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # probabilities in [0, 1]
    duplicate: float = 0.0
    reorder: float = 0.0
    rate_kbit: float = 0.0

    @classmethod
    def of(cls, faults: Faults) -> Netem:
        """The netem part of a node's wanted faults."""
        return cls(delay_ms=faults.delay_ms, jitter_ms=faults.jitter_ms, loss=faults.loss,
                   duplicate=faults.duplicate, reorder=faults.reorder, rate_kbit=faults.rate_kbit)

    def is_clear(self) -> bool:
        """No setting at all."""
        return not any((self.delay_ms, self.jitter_ms, self.loss, self.duplicate, self.reorder, self.rate_kbit))

    def arguments(self) -> Argv:
        """The `netem ...` arguments of tc ([] when only the rate is limited)."""
        args: Argv = []
        if self.delay_ms or self.jitter_ms or self.reorder:
            args += ["delay", f"{self.delay_ms:g}ms"] + ([f"{self.jitter_ms:g}ms"] if self.jitter_ms else [])
        for name, value in (("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)):
            if value:
                args += [name, f"{value * 100:g}%"]
        return args  # the rate is the htb class's (netem_commands)


# -- command builders (pure) -------------------------------------------------------------------------------------

def setup_commands(plan: NetnsPlan) -> list[Argv]:
    """Bridge with the gateway address, then per node: namespace, veth pair (one end into the namespace as eth0,
    the other a bridge port), the node's address, links up."""
    prefix_len = plan.network.prefixlen
    commands: list[Argv] = [
        ["ip", "link", "add", plan.bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{plan.gateway}/{prefix_len}", "dev", plan.bridge],
        ["ip", "link", "set", plan.bridge, "up"],
    ]
    for index in range(plan.nodes):
        namespace = plan.namespace(index)
        commands += [
            ["ip", "netns", "add", namespace],
            ["ip", "link", "add", plan.host_link(index), "type", "veth", "peer", "name", DEVICE, "netns", namespace],
            ["ip", "link", "set", plan.host_link(index), "master", plan.bridge, "up"],
            ["ip", "-n", namespace, "addr", "add", f"{plan.ip(index)}/{prefix_len}", "dev", DEVICE],
            ["ip", "-n", namespace, "link", "set", DEVICE, "up"],
            ["ip", "-n", namespace, "link", "set", "lo", "up"],
        ]
    return commands


def teardown_commands(namespaces: Sequence[str], links: Sequence[str]) -> list[Argv]:
    """Delete namespaces (their eth0 goes with them, and so the veth's other end), then any link still left
    (a bridge, or a veth end whose namespace was never made)."""
    return [["ip", "netns", "del", name] for name in namespaces] + [["ip", "link", "del", name] for name in links]


def plan_teardown_commands(plan: NetnsPlan) -> list[Argv]:
    """Everything `setup_commands(plan)` creates, removed."""
    return teardown_commands([plan.namespace(i) for i in range(plan.nodes)],
                             [plan.host_link(i) for i in range(plan.nodes)] + [plan.bridge])


def block_commands(plan: NetnsPlan, index: int, blocked: Sequence[int]) -> list[Argv]:
    """Node `index` drops every packet to the `blocked` nodes (replacing whatever it blocked before): blackhole
    routes in its namespace. Both sides of a partition have them, so no packet crosses either way."""
    namespace = plan.namespace(index)
    return [["ip", "-n", namespace, "route", "flush", "type", "blackhole"]] + [
        ["ip", "-n", namespace, "route", "replace", "blackhole", f"{plan.ip(other)}/32"] for other in sorted(blocked)]


def clear_netem_command(plan: NetnsPlan, index: int) -> Argv:
    """Remove node `index`'s qdiscs (fails harmlessly when there are none)."""
    return ["tc", "-n", plan.namespace(index), "qdisc", "del", "dev", DEVICE, "root"]


def netem_commands(plan: NetnsPlan, index: int, netem: Netem,
                   peer_delay_ms: Mapping[int, float] | None = None) -> list[Argv]:
    """Node `index`'s outgoing packets limited to `netem.rate_kbit` and through a netem qdisc, except those to the
    bridge address (the toolkit's RPC), which a u32 filter puts in a class of their own; run after
    clear_netem_command. An htb root rather than netem's own `rate`: htb and u32 are in every kernel that has
    qdiscs at all, netem (sch_netem) is a module some kernels leave out, and the rate limit then still works.

    `peer_delay_ms` (a latency matrix's row: destination index -> one-way ms) adds, per destination, an htb class
    `1:<0x100 + j>` chosen by a u32 filter on the destination address, with a netem child that delays by the
    matrix's value plus `netem`'s own delay (and applies its jitter, loss, duplication and reordering). The
    classes then sit under one parent `1:1` holding the rate, so `--rate-kbit` still limits the node's whole
    link, not each destination."""
    delays = {peer: ms for peer, ms in sorted((peer_delay_ms or {}).items()) if ms > 0}
    if netem.is_clear() and not delays:
        return []
    tc = ["tc", "-n", plan.namespace(index)]
    rate = f"{netem.rate_kbit:g}kbit" if netem.rate_kbit else UNLIMITED_RATE
    commands = [
        [*tc, "qdisc", "add", "dev", DEVICE, "root", "handle", "1:", "htb", "default", "20"],
        [*tc, "class", "add", "dev", DEVICE, "parent", "1:", "classid", "1:10", "htb", "rate", UNLIMITED_RATE,
         "quantum", HTB_QUANTUM],
    ]
    parent = "1:"
    if delays:
        parent = "1:1"
        commands.append([*tc, "class", "add", "dev", DEVICE, "parent", "1:", "classid", parent, "htb", "rate", rate,
                         "ceil", rate, "quantum", HTB_QUANTUM])
        share = f"{(netem.rate_kbit or UNLIMITED_KBIT) / (len(delays) + 1):g}kbit"  # assured; each may borrow to `rate`
        leaf = ["rate", share, "ceil", rate]
    else:
        leaf = ["rate", rate, "ceil", rate]
    commands += [
        [*tc, "class", "add", "dev", DEVICE, "parent", parent, "classid", "1:20", "htb", *leaf, "quantum",
         HTB_QUANTUM],
        [*tc, "filter", "add", "dev", DEVICE, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
         "dst", f"{plan.gateway}/32", "flowid", "1:10"],
    ]
    arguments = netem.arguments()
    if arguments:
        commands.append([*tc, "qdisc", "add", "dev", DEVICE, "parent", "1:20", "handle", "20:", "netem", *arguments])
    for peer, ms in delays.items():
        minor = f"{PEER_CLASS_BASE + peer:x}"
        commands += [
            [*tc, "class", "add", "dev", DEVICE, "parent", parent, "classid", f"1:{minor}", "htb", *leaf, "quantum",
             HTB_QUANTUM],
            [*tc, "filter", "add", "dev", DEVICE, "parent", "1:", "protocol", "ip", "prio", "2", "u32", "match", "ip",
             "dst", f"{plan.ip(peer)}/32", "flowid", f"1:{minor}"],
            [*tc, "qdisc", "add", "dev", DEVICE, "parent", f"1:{minor}", "handle", f"{minor}:", "netem",
             *dataclasses.replace(netem, delay_ms=netem.delay_ms + ms).arguments()],
        ]
    return commands


def exec_prefix(plan: NetnsPlan, index: int) -> Argv:
    """What runs a command inside node `index`'s namespace."""
    return ["ip", "netns", "exec", plan.namespace(index)]


# -- parsing what ip prints (pure) -------------------------------------------------------------------------------

def parse_netns_list(text: str) -> list[str]:
    """Names from `ip netns list` ("name" or "name (id: 3)" per line)."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def parse_link_names(text: str) -> list[str]:
    """Names from `ip -o link show` ("12: name@peer: <...> ...")."""
    names = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2 and parts[1].strip():
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def parse_ipv4_addresses(text: str) -> list[tuple[str, str]]:
    """(link, address/prefix) pairs from `ip -o -4 addr show`."""
    pairs = []
    for line in text.splitlines():
        fields = line.split()
        if "inet" in fields and len(fields) > fields.index("inet") + 1:
            pairs.append((fields[1], fields[fields.index("inet") + 1]))
    return pairs


def subnet_conflicts(subnet: str, addresses: Sequence[tuple[str, str]]) -> list[str]:
    """The links already holding an address that overlaps `subnet` (`link address` strings)."""
    network = _network(subnet)
    out = []
    for link, address in addresses:
        try:
            if ipaddress.IPv4Interface(address).network.overlaps(network):
                out.append(f"{link} {address}")
        except ValueError:
            continue
    return out


@dataclass(kw_only=True)
class Group:
    """What exists on the host for one testnet id."""

    testnet_id: str
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # processes inside its namespaces, and a launcher still alive
    directory: str = ""  # from the registry, when known


def group_by_testnet(namespaces: Sequence[str], links: Sequence[str]) -> dict[str, Group]:
    """The project's namespaces and links, by testnet id (other names are ignored)."""
    groups: dict[str, Group] = {}
    for name in namespaces:
        match = NAME_PATTERN.match(name)
        if match:
            groups.setdefault(match.group(1), Group(testnet_id=match.group(1))).namespaces.append(name)
    for name in links:
        match = NAME_PATTERN.match(name)
        if match:
            groups.setdefault(match.group(1), Group(testnet_id=match.group(1))).links.append(name)
    return groups


# -- running them --------------------------------------------------------------------------------------------------

def preflight(*, tc: bool = False) -> None:
    """TestnetError (one line, with what to do) unless this process can make namespaces."""
    if os.geteuid() != 0:
        raise TestnetError("--netns needs root (namespaces, veth pairs and bridges need CAP_NET_ADMIN): run it "
                           "with sudo, or leave out --netns")
    for tool in ("ip", "tc") if tc else ("ip",):
        if shutil.which(tool) is None:
            raise TestnetError(f"--netns needs the `{tool}` command of iproute2 (apt-get install iproute2)")
    result = _run(["ip", "netns", "list"])
    if result.returncode != 0:
        raise TestnetError(f"`ip netns` does not work here ({_first_line(result.stderr)}); network namespaces need "
                           "a kernel with CONFIG_NET_NS and iproute2")


def _run(argv: Argv) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise TestnetError(f"`{argv[0]}` is not installed (apt-get install iproute2)") from None
    except subprocess.TimeoutExpired:
        raise TestnetError(f"`{' '.join(argv)}` did not finish within {COMMAND_TIMEOUT_S:g} s") from None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[0]


def run_commands(commands: Sequence[Argv]) -> None:
    """Run each command in order; TestnetError naming the first that fails."""
    for argv in commands:
        result = _run(argv)
        if result.returncode != 0:
            if "netem" in argv and "qdisc kind is unknown" in result.stderr:
                raise TestnetError("this kernel has no netem qdisc (sch_netem): `modprobe sch_netem`, or a kernel "
                                   "built with CONFIG_NET_SCH_NETEM; --rate-kbit alone works without it")
            raise TestnetError(f"`{' '.join(argv)}` failed: {_first_line(result.stderr)}")


def run_tolerant(commands: Sequence[Argv]) -> list[str]:
    """Run every command even when some fail (clean-up); returns the failures other than "not there"."""
    failures = []
    for argv in commands:
        result = _run(argv)
        text = result.stderr.lower()
        gone = any(s in text for s in ("no such file", "cannot find device", "does not exist",
                                       "cannot delete qdisc with handle of zero", "invalid handle"))
        if result.returncode != 0 and not gone:
            failures.append(f"`{' '.join(argv)}`: {_first_line(result.stderr)}")
    return failures


def check_subnet_free(subnet: str) -> None:
    """TestnetError when an address on this host already overlaps `subnet` (another netns testnet, a LAN)."""
    result = _run(["ip", "-o", "-4", "addr", "show"])
    conflicts = subnet_conflicts(subnet, parse_ipv4_addresses(result.stdout))
    if conflicts:
        raise TestnetError(f"--subnet {subnet} overlaps addresses on this host ({', '.join(conflicts)}): pass "
                           "another --subnet, or take that testnet down (`chainlab testnet doctor` lists leftovers)")


def create(plan: NetnsPlan, directory: Path) -> None:
    """Make the plan's bridge, namespaces and links, and register them; on failure remove what was made."""
    register(plan.testnet_id, directory)
    try:
        run_commands(setup_commands(plan))
    except BaseException:
        destroy(plan)
        raise


def destroy(plan: NetnsPlan) -> list[str]:
    """Remove the plan's namespaces and links (whatever of them exists) and its registry entry; returns
    failures other than "already gone" (none expected)."""
    failures = run_tolerant(plan_teardown_commands(plan))
    (REGISTRY_DIR / plan.testnet_id).unlink(missing_ok=True)
    return failures


def register(testnet_id: str, directory: Path) -> None:
    """Remember which testnet directory an id belongs to and which launcher is making it (for `testnet doctor`:
    between the namespaces' creation and the nodes' start no process is inside them, yet they are in use)."""
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    entry = {"dir": str(directory), "launcher_pid": os.getpid()}
    (REGISTRY_DIR / testnet_id).write_text(json.dumps(entry) + "\n", encoding="utf-8")


def apply_all(plan: NetnsPlan, wanted: Sequence[tuple[int, Sequence[int], Faults]], *, partition: bool,
              netem: bool, delays: Mapping[int, Mapping[int, float]] | None = None) -> dict[str, str]:
    """Apply (index, blocked indices, faults) for several nodes in parallel, so a partition cuts at once, with
    each node's row of the latency matrix (`delays`, by index) on its link; returns {namespace: error} for those
    that failed."""
    def one(item: tuple[int, Sequence[int], Faults]) -> tuple[str, str | None]:
        index, blocked, faults = item
        try:
            if partition:
                run_commands(block_commands(plan, index, blocked))
            if netem:
                run_tolerant([clear_netem_command(plan, index)])
                run_commands(netem_commands(plan, index, Netem.of(faults), (delays or {}).get(index)))
        except TestnetError as exc:
            return plan.namespace(index), str(exc)
        return plan.namespace(index), None

    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        return {name: error for name, error in pool.map(one, wanted) if error is not None}


def namespace_exists(name: str) -> bool:
    """A namespace of that name exists on this host."""
    return Path("/run/netns", name).exists()


def survey() -> dict[str, Group]:
    """Every namespace and link with the project's prefix on this host, by testnet id, with the processes in
    each namespace and the testnet directory the registry names."""
    namespaces = parse_netns_list(_run(["ip", "netns", "list"]).stdout)
    links = parse_link_names(_run(["ip", "-o", "link", "show"]).stdout)
    groups = group_by_testnet(namespaces, links)
    for group in groups.values():
        for name in group.namespaces:
            inside = [int(p) for p in _run(["ip", "netns", "pids", name]).stdout.split() if p.isdigit()]
            group.pids += [pid for pid in inside if procs.alive(pid)]  # a zombie holds nothing
        try:
            entry = json.loads((REGISTRY_DIR / group.testnet_id).read_text())
            group.directory = str(entry["dir"])
            launcher = int(entry.get("launcher_pid", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if launcher and launcher not in group.pids and procs.alive(launcher) and launcher != os.getpid():
            group.pids.append(launcher)  # still starting its nodes
    return groups


def remove_group(group: Group) -> list[str]:
    """Remove a group's namespaces and links and its registry entry; returns failures."""
    failures = run_tolerant(teardown_commands(group.namespaces, group.links))
    (REGISTRY_DIR / group.testnet_id).unlink(missing_ok=True)
    return failures


def doctor(*, fix: bool) -> dict[str, Any]:
    """`testnet doctor`: every group of the project's namespaces and links; with `fix`, those whose namespaces
    hold no process (their launcher and nodes are gone) are removed. Groups in use are never touched."""
    preflight()
    groups = survey()
    failures: list[str] = []
    rows: list[dict[str, Any]] = []
    for testnet_id, group in sorted(groups.items()):
        removed = False
        if fix and not group.pids:
            problems = remove_group(group)
            failures += problems
            removed = not problems
        rows.append({"id": testnet_id, "dir": group.directory, "namespaces": group.namespaces, "links": group.links,
                     "pids": group.pids, "removed": removed})
    leftovers = [row["id"] for row in rows if not row["pids"] and not row["removed"]]
    return {"groups": rows, "leftovers": leftovers, "failures": failures}

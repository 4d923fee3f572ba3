"""The concepts of the theory tour, grouped as the theory text is, with their demonstrations (pure).

Every concept issue #20 names is listed, each with its demonstration: `chainlab tour` shows the whole map. The
Chinese names are the source text's.
"""

from __future__ import annotations

from tour.demos import (
    blockchain,
    broadcast,
    byzantine,
    cap,
    causality,
    chains,
    consistency,
    crashes,
    failuredetector,
    locks,
    models,
    multimaster,
    partition,
    pbft,
    primarybackup,
    raft,
    smr,
)
from tour.model import Concept, Kind

GROUPS = (
    "foundations and system models",
    "consistency",
    "fault tolerance",
    "communication",
    "state machine replication",
    "consensus algorithms",
    "formal model",
    "blockchain",
)

SIM, REAL = Kind.SIMULATED, Kind.REAL_PROCESS

CONCEPTS: tuple[Concept, ...] = (
    Concept(name="system-models", group=GROUPS[0], kind=SIM,
            title="Synchronous, asynchronous and partially synchronous models", title_zh="同步、异步与部分同步模型",
            summary="Raft and PoW under three delay models: Raft elects no leader before GST; PoW mines on, forking",
            demonstration=models.run),
    Concept(name="consistency-levels", group=GROUPS[1], kind=SIM,
            title="Strong, weak and eventual consistency", title_zh="强一致性、弱一致性与最终一致性",
            summary="reads at linearizable, final and latest levels under partitions, judged by the consistency lab",
            demonstration=consistency.levels),
    Concept(name="cap", group=GROUPS[1], kind=REAL, title="The CAP theorem", title_zh="CAP 定理",
            summary="one partition, real processes: Raft's minority refuses (consistency), PoW's answers stale "
                    "(availability)",
            demonstration=cap.run, in_fast=False),
    Concept(name="linearizability", group=GROUPS[1], kind=SIM, title="Linearizability", title_zh="线性一致性",
            summary="Raft ReadIndex reads under partition and loss, checked by the Wing-Gong/Lowe checker",
            demonstration=consistency.linearizability),
    Concept(name="crash-failure", group=GROUPS[2], kind=SIM,
            title="Crash failures: complete stop, omission, commission", title_zh="崩溃故障",
            summary="each crash mode injected into each engine, and what the engine does about it",
            demonstration=crashes.run),
    Concept(name="byzantine-failure", group=GROUPS[2], kind=SIM, title="Byzantine failure", title_zh="拜占庭故障",
            summary="malicious messages, protocol violations, selective responses injected into PBFT",
            demonstration=byzantine.run),
    Concept(name="failure-detector", group=GROUPS[2], kind=SIM, title="Failure detector", title_zh="故障检测器",
            summary="suspicion time against heartbeat and timeout; false suspicions under delay (completeness, "
                    "accuracy)",
            demonstration=failuredetector.run),
    Concept(name="reliable-messaging", group=GROUPS[3], kind=SIM, title="Reliable message passing",
            title_zh="可靠消息传递",
            summary="under loss and duplication every block reaches every node once (retransmissions, duplicates)",
            demonstration=broadcast.reliable_messaging),
    Concept(name="atomic-broadcast", group=GROUPS[3], kind=SIM, title="Atomic broadcast", title_zh="原子广播",
            summary="Raft and PBFT deliver the same blocks in the same order to every node",
            demonstration=broadcast.atomic_broadcast),
    Concept(name="state-machine-replication", group=GROUPS[4], kind=SIM,
            title="Replicated state machine and state machine theory", title_zh="状态机复制",
            summary="same transactions in the same order: same state commitment; another order: another state",
            demonstration=smr.run),
    Concept(name="partition-handling", group=GROUPS[4], kind=SIM,
            title="Network partition handling: by quorum and by hash power", title_zh="网络分区处理",
            summary="one partition, Raft, PBFT and PoW side by side: only a side with a quorum / hash power moves on",
            demonstration=partition.run),
    Concept(name="primary-backup", group=GROUPS[4], kind=SIM, title="Primary-backup replication",
            title_zh="主备复制", summary="the primary crashes: primary-backup stops (no fail-over), Raft fails over",
            demonstration=primarybackup.run),
    Concept(name="multi-master", group=GROUPS[4], kind=SIM, title="Multi-master replication", title_zh="多主复制",
            summary="two sides of a PoW partition take conflicting transfers; fork choice picks one, the loser named",
            demonstration=multimaster.run),
    Concept(name="raft", group=GROUPS[5], kind=SIM, title="Raft", title_zh="Raft 算法",
            summary="leader election, log replication and fail-over; one leader per term; Figure 8",
            demonstration=raft.run),
    Concept(name="pbft", group=GROUPS[5], kind=SIM, title="PBFT (practical Byzantine fault tolerance)",
            title_zh="实用拜占庭容错",
            summary="f Byzantine validators of 3f+1 are tolerated, f+1 break safety (twins)",
            demonstration=pbft.run),
    Concept(name="distributed-lock", group=GROUPS[5], kind=SIM, title="Distributed lock with fencing",
            title_zh="分布式锁", summary="leases and fencing tokens: a paused holder's stale write is refused",
            demonstration=locks.run),
    Concept(name="causality", group=GROUPS[6], kind=SIM,
            title="Event model, causality and vector clocks", title_zh="事件模型、因果关系与向量时钟",
            summary="happens-before and concurrency on a PoW fork, from vector clocks; the space-time diagram",
            demonstration=causality.run),
    Concept(name="blockchain", group=GROUPS[7], kind=REAL, title="The blockchain as a distributed system",
            title_zh="区块链作为分布式系统",
            summary="three real PoW nodes, one stopped and restarted: mining, gossip, sync and finality through RPC",
            demonstration=blockchain.run),
    Concept(name="longest-chain", group=GROUPS[7], kind=SIM, title="Longest chain and orphan blocks",
            title_zh="最长链与孤块",
            summary="forks resolved by most work, orphans waiting for their parents, every node on one tip",
            demonstration=chains.longest_chain),
    Concept(name="finality", group=GROUPS[7], kind=SIM, title="Confirmation finality", title_zh="确认与最终性",
            summary="reorg depths over many seeds against the finality threshold k: what k buys",
            demonstration=chains.finality),
)

BY_NAME = {concept.name: concept for concept in CONCEPTS}
assert len(BY_NAME) == len(CONCEPTS), "concept names are unique"
assert all(concept.group in GROUPS for concept in CONCEPTS)


def concept_named(name: str) -> Concept | None:
    """The concept called `name`, or None."""
    return BY_NAME.get(name)


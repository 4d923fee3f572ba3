"""The failure detector (故障检测器): suspicion time against heartbeat interval and timeout, and false suspicions
under delay; completeness and accuracy measured on the project's detector (consensus/failure_detector.py).

One monitor watches three peers that send it a heartbeat every `HEARTBEAT_INTERVAL_S`. Delays follow partial
synchrony: before the global stabilisation time (GST) a heartbeat is late by a drawn spike now and then, after it
every delay is within `DELAY_BOUND_S`. Peer p3 crashes after GST. The very same arrivals (one seed) are fed to one
detector per timeout, which the monitor polls every `POLL_S`; what each detector suspects is compared with the
truth (who crashed):

- strong completeness: the crashed peer is suspected, within its last heartbeat's delay plus one timeout (and a
  poll) of the crash, and never trusted again;
- eventual accuracy (the ◇P detector of Chandra and Toueg): once delays are bounded, a timeout of at least one
  interval plus the delay bound's jitter never suspects a correct peer; a shorter one does, even in synchrony;
- the trade-off: a longer timeout makes fewer false suspicions before GST and detects the crash later;
- the heartbeat interval: swept over INTERVALS_S with timeouts of TIMEOUT_MULTIPLES intervals, a faster heartbeat
  allows a shorter accurate timeout, so a faster detection, for more messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from random import Random

from consensus.failure_detector import FailureDetector
from testnet.checks import CheckResult
from tour.model import Outcome, Picture, TourContext
from tour.svg import lines_chart

HEARTBEAT_INTERVAL_S = 0.5
DELAY_MIN_S, DELAY_BOUND_S = 0.01, 0.2  # every delay after GST is in this range
SPIKE_PROBABILITY, SPIKE_MEAN_S = 0.15, 1.0  # before GST a heartbeat is this often late by an exponential spike
POLL_S = 0.05
TIMEOUTS_S = (0.6, 0.75, 1.0, 1.5, 2.5)
PEERS = ("p1", "p2", "p3")
CRASHED = "p3"
PICTURE_TIMEOUT_S = 0.75
Y_MAX_S = 3.0  # the picture's y axis: the crashed peer's silence grows past it, the spikes before GST stay visible


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When the run stabilises, when p3 crashes, when it ends (virtual seconds)."""

    gst_s: float
    crash_s: float
    end_s: float


@dataclass(slots=True, kw_only=True)
class Verdicts:
    """What one detector (one timeout) did."""

    timeout_s: float
    false_before_gst: int = 0
    false_after_stable: int = 0  # false suspicions begun once delays were bounded for one timeout
    false_suspected_s: float = 0.0  # time correct peers spent suspected
    detected_after_s: float | None = None  # crash -> the suspicion that lasted
    crashed_suspected_at_end: bool = False
    since_heard: dict[str, list[float]] = field(default_factory=dict)


def arrivals(rng: Random, schedule: Schedule, interval_s: float = HEARTBEAT_INTERVAL_S) -> list[tuple[float, str]]:
    """Every heartbeat's arrival (time, peer), sorted: sent each interval (p3 until its crash), delayed as the
    model says."""
    out = []
    for offset, peer in enumerate(PEERS):
        sent = offset * interval_s / len(PEERS)
        stop = schedule.crash_s if peer == CRASHED else schedule.end_s
        while sent <= stop:
            delay = rng.uniform(DELAY_MIN_S, DELAY_BOUND_S)
            if sent < schedule.gst_s and rng.random() < SPIKE_PROBABILITY:
                delay += rng.expovariate(1.0 / SPIKE_MEAN_S)
            out.append((sent + delay, peer))
            sent += interval_s
    return sorted(out)


def watch(timeout_s: float, heard: list[tuple[float, str]], schedule: Schedule, *, sample: bool,
          interval_s: float = HEARTBEAT_INTERVAL_S) -> Verdicts:
    """Drive one detector with the arrivals and poll it; judge each suspicion against the truth."""
    detector = FailureDetector(timeout_s)
    verdicts = Verdicts(timeout_s=timeout_s, since_heard={peer: [] for peer in PEERS} if sample else {})
    stable_s = schedule.gst_s + interval_s + DELAY_BOUND_S + timeout_s
    suspected_since: dict[str, float] = {}
    position, steps = 0, round(schedule.end_s / POLL_S)
    for step in range(1, steps + 1):
        now = step * POLL_S
        while position < len(heard) and heard[position][0] <= now:
            at, peer = heard[position]
            position += 1
            trusted_again = detector.heard(peer.encode(), at)
            if trusted_again is not None:
                began = suspected_since.pop(peer)
                if peer != CRASHED or began < schedule.crash_s:
                    verdicts.false_suspected_s += at - began
        for suspicion in detector.poll(now):
            peer = suspicion.process.decode()
            suspected_since[peer] = now
            if peer == CRASHED and now >= schedule.crash_s:
                verdicts.detected_after_s = now - schedule.crash_s  # the last one is the one that lasts
            elif now < schedule.gst_s:
                verdicts.false_before_gst += 1
            elif now >= stable_s:
                verdicts.false_after_stable += 1
        if sample:
            for peer in PEERS:
                verdicts.since_heard[peer].append(detector.last_heard_s(peer.encode(), now) or 0.0)
    verdicts.crashed_suspected_at_end = CRASHED in suspected_since
    return verdicts


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _checks(runs: list[Verdicts], schedule: Schedule) -> tuple[CheckResult, ...]:
    bound_s = DELAY_BOUND_S + POLL_S
    incomplete = [f"timeout {v.timeout_s} s: " + ("never suspected it" if v.detected_after_s is None else
                                                  f"suspected it {v.detected_after_s:.2f} s after the crash")
                  for v in runs if v.detected_after_s is None or v.detected_after_s > v.timeout_s + bound_s]
    incomplete += [f"timeout {v.timeout_s} s: trusted it again at the end" for v in runs
                   if v.detected_after_s is not None and not v.crashed_suspected_at_end]
    jitter_s = HEARTBEAT_INTERVAL_S + DELAY_BOUND_S - DELAY_MIN_S
    covering = [v for v in runs if v.timeout_s >= jitter_s]
    inaccurate = [f"timeout {v.timeout_s} s: {v.false_after_stable}" for v in covering if v.false_after_stable]
    short, long = runs[0], runs[-1]
    traded = (short.false_before_gst > long.false_before_gst and short.detected_after_s is not None
              and long.detected_after_s is not None and long.detected_after_s > short.detected_after_s)
    return (
        CheckResult(name="strong-completeness", ok=not incomplete, detail=(
            f"every timeout suspected the crashed {CRASHED} within its timeout + {bound_s:.2f} s of the crash, for "
            "good" if not incomplete else "; ".join(incomplete))),
        CheckResult(name="eventual-accuracy", ok=bool(covering) and not inaccurate, detail=(
            f"after GST ({schedule.gst_s:g} s) no timeout >= {jitter_s:.2f} s (interval + delay jitter) suspected "
            "a correct peer" if covering and not inaccurate else
            "correct peers suspected once delays were bounded: " + "; ".join(inaccurate))),
        CheckResult(name="timeout-trade-off", ok=traded, detail=(
            f"timeout {short.timeout_s} s: {short.false_before_gst} false suspicions before GST, crash detected in "
            f"{_seconds(short.detected_after_s)}; timeout {long.timeout_s} s: {long.false_before_gst}, detected in "
            f"{_seconds(long.detected_after_s)}" + ("" if traded else ": the longer timeout did not trade mistakes for "
                                                              "detection time"))),
    )


INTERVALS_S = (0.25, 0.5, 1.0)  # the heartbeat intervals of the sweep
TIMEOUT_MULTIPLES = (1.2, 1.5, 2.0, 3.0, 5.0)  # each interval's timeouts, as multiples of it


@dataclass(frozen=True, slots=True)
class IntervalRow:
    """One heartbeat interval of the sweep: its shortest timeout (of the multiples) that suspected no correct peer
    once delays were bounded, and how soon that timeout detected the crash."""

    interval_s: float
    accurate_timeout_s: float | None
    detected_after_s: float | None

    def describe(self) -> str:
        if self.accurate_timeout_s is None:
            return f"{self.interval_s:>5} s  {1 / self.interval_s:>6.0f}/s   no timeout up to " \
                f"{TIMEOUT_MULTIPLES[-1]:g} intervals was accurate"
        return (f"{self.interval_s:>5} s  {1 / self.interval_s:>6.0f}/s   {self.accurate_timeout_s:>16.3g} s   "
                f"{_seconds(self.detected_after_s):>14}")


def sweep(seed: int, schedule: Schedule) -> list[IntervalRow]:
    """For each heartbeat interval, the same kind of history (its own draws from the seed) fed to detectors with
    timeouts of TIMEOUT_MULTIPLES intervals."""
    rows = []
    for interval_s in INTERVALS_S:
        heard = arrivals(Random(f"{seed}-{interval_s}"), schedule, interval_s)
        verdicts = [watch(round(interval_s * m, 6), heard, schedule, sample=False, interval_s=interval_s)
                    for m in TIMEOUT_MULTIPLES]
        accurate = next((v for v in verdicts if v.false_after_stable == 0), None)
        rows.append(IntervalRow(interval_s=interval_s, accurate_timeout_s=None if accurate is None else
                                accurate.timeout_s, detected_after_s=None if accurate is None else
                                accurate.detected_after_s))
    return rows


def interval_check(rows: list[IntervalRow]) -> CheckResult:
    """A faster heartbeat allows a shorter accurate timeout, and so a faster detection in the worst case (a crash
    just after a heartbeat), at more messages: the shortest accurate timeouts grow with the interval, and each
    detected the crash within it (plus the delay bound and a poll)."""
    timeouts = [row.accurate_timeout_s for row in rows if row.accurate_timeout_s is not None]
    grows = len(timeouts) == len(rows) and all(a < b for a, b in pairwise(timeouts))
    late = [row for row in rows if row.accurate_timeout_s is not None and (
        row.detected_after_s is None or row.detected_after_s > row.accurate_timeout_s + DELAY_BOUND_S + POLL_S)]
    ok = grows and not late
    return CheckResult(name="interval-trade-off", ok=ok, detail=(
        "shortest accurate timeout " + ", ".join(
            f"{row.accurate_timeout_s:g} s at a {row.interval_s:g} s heartbeat (crash detected in "
            f"{_seconds(row.detected_after_s)})" for row in rows if row.accurate_timeout_s is not None)
        + ("" if grows else "; a faster heartbeat did not allow a shorter accurate timeout")
        + "".join(f"; at {row.interval_s:g} s the crash was detected late" for row in late)))


def run(context: TourContext) -> Outcome:
    """Feed one seeded heartbeat history to a detector per timeout; measure completeness and accuracy."""
    schedule = Schedule(gst_s=15.0, crash_s=22.0, end_s=30.0) if context.fast else \
        Schedule(gst_s=40.0, crash_s=55.0, end_s=70.0)
    heard = arrivals(Random(context.seed), schedule)
    runs = [watch(timeout_s, heard, schedule, sample=timeout_s == PICTURE_TIMEOUT_S) for timeout_s in TIMEOUTS_S]
    lines = [f"{len(PEERS)} peers send a heartbeat every {HEARTBEAT_INTERVAL_S} s; delays {DELAY_MIN_S}-"
             f"{DELAY_BOUND_S} s, before GST ({schedule.gst_s:g} s) {SPIKE_PROBABILITY:.0%} of them late by a spike "
             f"(mean {SPIKE_MEAN_S} s); {CRASHED} crashes at {schedule.crash_s:g} s; polled every {POLL_S} s",
             "timeout  false suspicions (before GST / once stable)  correct peers suspected  crash detected after"]
    for v in runs:
        detected = _seconds(v.detected_after_s)
        lines.append(f"{v.timeout_s:>5} s  {v.false_before_gst:>20} / {v.false_after_stable:<22}"
                     f"{v.false_suspected_s:>7.2f} s  {detected:>20}")
    rows = sweep(context.seed, schedule)
    lines += ["heartbeat  messages/s  shortest accurate timeout  crash detected after   (per peer; timeouts of "
              + ", ".join(f"{m:g}" for m in TIMEOUT_MULTIPLES) + " intervals)"]
    lines += [row.describe() for row in rows]
    sampled = next(v for v in runs if v.timeout_s == PICTURE_TIMEOUT_S)
    times = [step * POLL_S for step in range(1, round(schedule.end_s / POLL_S) + 1)]
    series = {f"since heard from {peer}": sampled.since_heard[peer] for peer in ("p1", CRASHED)}
    series[f"timeout {PICTURE_TIMEOUT_S} s"] = [PICTURE_TIMEOUT_S] * len(times)
    picture = Picture(name="suspicion.svg", caption=f"seconds since p1 and {CRASHED} were last heard (p2 is like p1), "
                      f"against a {PICTURE_TIMEOUT_S} s timeout: spikes before GST, the crash after", text=lines_chart(
                          "Failure detector: time since last heartbeat", times=times, series=series,
                          shaded=[(0.0, schedule.gst_s, "before GST"), (schedule.crash_s, schedule.end_s,
                                                                        f"{CRASHED} crashed")],
                          y_label="seconds", y_max=Y_MAX_S))
    figures = {"timeouts_s": list(TIMEOUTS_S), "gst_s": schedule.gst_s, "crash_s": schedule.crash_s,
               "false_before_gst": [v.false_before_gst for v in runs],
               "false_after_stable": [v.false_after_stable for v in runs],
               "detected_after_s": [None if v.detected_after_s is None else round(v.detected_after_s, 3)
                                    for v in runs],
               "intervals": [{"interval_s": row.interval_s, "accurate_timeout_s": row.accurate_timeout_s,
                              "detected_after_s": None if row.detected_after_s is None else
                              round(row.detected_after_s, 3)} for row in rows]}
    return Outcome(concept="failure-detector", seed=context.seed, lines=tuple(lines),
                   checks=(*_checks(runs, schedule), interval_check(rows)), figures=figures, pictures=(picture,))

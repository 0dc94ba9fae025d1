"""The chaos run's soak mode: a steady mix of scenarios started at a fixed rate for a long time,
with no faults, sampling each sshpod instance's memory (RSS) and open descriptors, and per
interval the login latency (p50, p99) and the throughput. Writes a markdown table, the raw
samples (JSON) and a plot (PNG); the books are then balanced as after a cycle run.

Used by bench/chaos.py (`--soak DURATION --rate R`); it owns the pacing and the figures, the
scenarios and the books stay there.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from chaos import Chaos

MiB = 1024 * 1024
# How often memory and descriptors are sampled (the plot's resolution).
SAMPLE_EVERY = 10.0
# The soak's mix: every scenario of the cycle run, logins weighted up so each interval has
# enough login latencies for a p99, bulk transfers down so the rate stays steady on a small
# machine.
MIX = {
    "login": 8, "wrong-key": 1, "unknown-user": 1, "pty": 2, "exec-stdin": 2, "upload": 1,
    "download": 1, "sftp": 1, "forward": 1, "kill-mid-transfer": 1, "drop-without-fin": 1,
}


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `30m`, `1h`, `1h30m` or a bare number of seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (write 90s, 30m, 1h or 1h30m)")
    return float(sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts))


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats' surprises
    return ordered[int(rank) - 1]


@dataclass
class Sample:
    """Each instance's (RSS bytes, descriptors) at `at` seconds into the soak."""
    at: float
    usage: list[tuple[int, int] | None]


@dataclass
class Interval:
    """One row of the table."""
    start: float
    end: float
    started: int = 0
    completed: int = 0
    failed: int = 0          # outcomes other than the scenario's expected one
    logins: list[float] = field(default_factory=list)
    moved: int = 0           # bytes of upload, download, sftp and stdin that arrived intact
    usage: list[tuple[int, int] | None] = field(default_factory=list)


# What each scenario ends with when all went as planned.
EXPECTED = {"ok", "refused", "killed", "dropped"}


class Soak:
    def __init__(self, chaos: "Chaos", duration: float, rate: float, interval: float, out: Path,
                 say: Callable[[str], None]):
        self.chaos = chaos
        self.say = say
        self.duration = duration
        self.rate = rate
        self.interval = interval
        self.out = out
        self.begin = 0.0
        self.lock = threading.Lock()
        self.starts: list[float] = []                          # offsets of started scenarios
        self.ends: list[tuple[float, str, str]] = []           # (offset, scenario, outcome)
        self.samples: list[Sample] = []
        self.behind = 0  # scheduled starts dropped because every client was busy

    # running --------------------------------------------------------------------------

    def run(self) -> None:
        chaos = self.chaos
        say = self.say
        rng = random.Random(f"{chaos.args.seed}:soak")
        names, weights = zip(*MIX.items())
        slots = threading.BoundedSemaphore(chaos.args.clients)
        threads: list[threading.Thread] = []
        self.begin = time.monotonic()
        sampler = threading.Thread(target=self._sample_loop, daemon=True)
        sampler.start()
        say(f"soak: {self.duration:.0f} s at {self.rate:g} sessions/s, at most {chaos.args.clients} at a time")
        n = 0
        last_report = self.begin
        while True:
            due = self.begin + n / self.rate
            if due >= self.begin + self.duration:
                break
            # Pacing, not synchronisation: the next start is due at a fixed time.
            if chaos.stop.wait(max(0.0, due - time.monotonic())):
                break
            scenario = rng.choices(names, weights)[0]
            index = rng.randrange(len(chaos.instances))
            n += 1
            if not slots.acquire(blocking=False):
                self.behind += 1
                continue
            with self.lock:
                self.starts.append(time.monotonic() - self.begin)
            thread = threading.Thread(target=self._one, args=(n, scenario, index, slots), daemon=True)
            thread.start()
            threads.append(thread)
            threads = [t for t in threads if t.is_alive()]
            if time.monotonic() - last_report >= self.interval:
                last_report = time.monotonic()
                say(f"soak: {len(self.starts)} started, {len(self.ends)} ended, {self.behind} behind")
        for thread in threads:
            thread.join(600)
        chaos.stop.set()
        sampler.join(60)
        self._take_sample()
        self.write()

    def _one(self, n: int, scenario: str, index: int, slots: threading.BoundedSemaphore) -> None:
        try:
            outcome = self.chaos.run_cycle(n, scenario, index)
        finally:
            slots.release()
        with self.lock:
            self.ends.append((time.monotonic() - self.begin, scenario, outcome))

    def _sample_loop(self) -> None:
        while not self.chaos.stop.wait(SAMPLE_EVERY):
            self._take_sample()

    def _take_sample(self) -> None:
        usage: list[tuple[int, int] | None] = []
        for instance in self.chaos.instances:
            try:
                usage.append(instance.usage())
            except (OSError, AttributeError):
                usage.append(None)
        with self.lock:
            self.samples.append(Sample(time.monotonic() - self.begin, usage))

    # figures --------------------------------------------------------------------------

    def intervals(self) -> list[Interval]:
        ledger = self.chaos.ledger
        count = max(1, int(-(-self.duration // self.interval)))
        rows = [Interval(k * self.interval, min((k + 1) * self.interval, self.duration)) for k in range(count)]

        def row(at: float) -> Interval:
            return rows[min(len(rows) - 1, max(0, int(at // self.interval)))]
        for at in self.starts:
            row(at).started += 1
        for at, _scenario, outcome in self.ends:
            r = row(at)
            r.completed += 1
            r.failed += outcome not in EXPECTED
        for at, seconds in ledger.login_times:
            row(at - self.begin).logins.append(seconds)
        for at, size in ledger.moved:
            row(at - self.begin).moved += size
        for r in rows:
            inside = [s for s in self.samples if s.at <= r.end + SAMPLE_EVERY / 2]
            r.usage = inside[-1].usage if inside else []
        return rows

    def table(self, rows: list[Interval]) -> str:
        names = [i.name for i in self.chaos.instances]
        head = ("| minutes | started | ended | not as planned | logins | login p50 ms | login p99 ms "
                "| MiB/s | " + " | ".join(f"{n} RSS MiB, fds" for n in names) + " |")
        lines = [head, "|---" + "|---:" * (7 + len(names)) + "|"]
        for r in rows:
            p50, p99 = percentile(r.logins, 50), percentile(r.logins, 99)
            usage = [f"{u[0] / MiB:.1f}, {u[1]}" if u else "-" for u in r.usage] or ["-"] * len(names)
            span = r.end - r.start
            lines.append(
                f"| {r.start / 60:g}-{r.end / 60:g} | {r.started} | {r.completed} | {r.failed} | {len(r.logins)} "
                f"| {_ms(p50)} | {_ms(p99)} | {r.moved / MiB / span:.2f} | " + " | ".join(usage) + " |")
        return "\n".join(lines)

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        stem = self.out / f"soak-{self.chaos.backend}"
        rows = self.intervals()
        every = [s for _, s in self.chaos.ledger.login_times]
        header = (f"Soak on {self.chaos.backend}: {self.duration / 60:.0f} min at {self.rate:g} sessions/s "
                  f"(at most {self.chaos.args.clients} at a time), {len(self.chaos.instances)} instances, "
                  f"seed {self.chaos.args.seed}; {len(self.starts)} sessions started, {self.behind} starts dropped "
                  f"because every client was busy; logins {len(every)}, p50 {_ms(percentile(every, 50))} ms, "
                  f"p99 {_ms(percentile(every, 99))} ms.")
        stem.with_suffix(".md").write_text(header + "\n\n" + self.table(rows) + "\n")
        stem.with_suffix(".json").write_text(json.dumps({
            "backend": self.chaos.backend, "duration": self.duration, "rate": self.rate,
            "instances": [i.name for i in self.chaos.instances], "behind": self.behind,
            "samples": [{"at": s.at, "usage": s.usage} for s in self.samples],
            "logins": [(at - self.begin, s) for at, s in self.chaos.ledger.login_times],
            "ends": self.ends,
        }) + "\n")
        self.plot(rows, stem.with_suffix(".png"))
        self.say(f"soak figures: {stem}.md, .json, .png")
        print()
        print(header)
        print()
        print(self.table(rows))

    def plot(self, rows: list[Interval], path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [i.name for i in self.chaos.instances]
        fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
        (rss_ax, fd_ax), (lat_ax, tput_ax) = axes
        for k, name in enumerate(names):
            points = [(s.at / 60, s.usage[k]) for s in self.samples if k < len(s.usage) and s.usage[k]]
            rss_ax.plot([t for t, _ in points], [u[0] / MiB for _, u in points], label=name)
            fd_ax.plot([t for t, _ in points], [u[1] for _, u in points], label=name)
        rss_ax.set_title("sshpod RSS (MiB)")
        fd_ax.set_title("sshpod open descriptors")
        rss_ax.legend()
        fd_ax.legend()
        logins = [((at - self.begin) / 60, s * 1000) for at, s in self.chaos.ledger.login_times]
        lat_ax.scatter([t for t, _ in logins], [v for _, v in logins], s=3, alpha=0.25, color="grey", label="each login")
        mids = [(r.start + r.end) / 120 for r in rows]
        lat_ax.plot(mids, [percentile(r.logins, 50) and percentile(r.logins, 50) * 1000 for r in rows],
                    marker="o", label="p50")
        lat_ax.plot(mids, [percentile(r.logins, 99) and percentile(r.logins, 99) * 1000 for r in rows],
                    marker="o", label="p99")
        lat_ax.set_title("login latency (ms): connect to command output and exit")
        lat_ax.set_yscale("log")
        lat_ax.legend()
        tput_ax.plot(mids, [r.completed / ((r.end - r.start) / 60) for r in rows], marker="o",
                     label="sessions ended / min")
        tput_ax.set_title("throughput")
        mib = tput_ax.twinx()
        mib.plot(mids, [r.moved / MiB / (r.end - r.start) for r in rows], marker="s", color="tab:green",
                 label="MiB/s moved")
        tput_ax.legend(loc="upper left")
        mib.legend(loc="upper right")
        for ax in (lat_ax, tput_ax):
            ax.set_xlabel("minutes")
        for ax in axes.flat:
            ax.grid(alpha=0.3)
        fig.suptitle(f"sshpod soak on {self.chaos.backend}: {self.rate:g} sessions/s for "
                     f"{self.duration / 60:.0f} min, {len(names)} instances")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"

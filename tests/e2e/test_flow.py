"""Flow control: two-way streams never stall, and one stalled session never holds up the others.

Both tests multiplex several sessions on one OpenSSH ControlMaster connection, as VS Code
Remote-SSH and `ssh -o ControlMaster` do, because that is where one channel's trouble used to
become everybody's.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness as h

MiB = 1024 * 1024


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        remaining = size
        while remaining:
            chunk = min(remaining, 4 * MiB)
            f.write(os.urandom(chunk))
            remaining -= chunk
    return path


def same_content(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class CpuLoad:
    """Busy processes on every CPU, so that sshpod, the engine and the client compete."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "CpuLoad":
        for _ in range(os.cpu_count() or 2):
            self.procs.append(subprocess.Popen(["sh", "-c", "while :; do :; done"]))
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)


def stream_in_parallel(client: h.Client, command: str, opts: list[str], src: Path, streams: int,
                       out_dir: Path, timeout: float) -> None:
    """Runs `command` `streams` times at once with `src` as input; each output must equal it."""
    results: list[h.Result | BaseException] = [RuntimeError("not run")] * streams

    def stream(i: int) -> None:
        try:
            results[i] = client.ssh(command, opts=opts, stdin_path=src,
                                    stdout_path=out_dir / f"dst{i}.bin", timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, result in enumerate(results):
        assert isinstance(result, h.Result) and result.returncode == 0, (i, result)
        assert same_content(src, out_dir / f"dst{i}.bin"), f"stream {i} came back different"


def rekeying_every_mib(scn) -> tuple[h.Client, Path, list[str]]:
    """A gateway and a ControlMaster connection to it on which both sides renew their keys
    every MiB; returns the client, the control path and the options that use it."""
    gw = scn.start({"ssh": {"rekeyLimit": "1M"}})
    client = scn.client(gw)
    control = scn.tmp / "cm"
    opts = [*h.control_options(control), "-o", "RekeyLimit=1M"]
    assert client.ssh("true", opts=opts).returncode == 0
    return client, control, opts


@pytest.mark.timeout(900)
def test_two_way_streams_on_one_connection_never_stall_under_load(scn):
    """1 GiB both ways through `cat`: four streams of 256 MiB on one connection, both CPUs busy,
    and both sides rekeying every MiB. This stalled in 5 of 18 single-stream tries: during a
    rekey the SSH library takes no output, the processes stop reading while their output
    waits, and sshpod stopped reading the socket that carried the rest of the key exchange."""
    client, control, opts = rekeying_every_mib(scn)
    src = random_file(scn.tmp / "src.bin", 256 * MiB)
    with CpuLoad():
        stream_in_parallel(client, "cat", opts, src, 4, scn.tmp, timeout=800)
    h.close_control_master(client, control)


# `cat`, but reading its input a MiB at a time with a pause between: the client always has
# more to send than the process has taken.
THROTTLED_CAT = (
    'f=/tmp/chunk.$$; while :; do dd bs=1M count=1 iflag=fullblock status=none >"$f"; '
    '[ -s "$f" ] || break; cat "$f"; sleep 0.2; done; rm -f "$f"'
)


@pytest.mark.timeout(600)
def test_slow_readers_moving_data_both_ways_survive_rekeying(scn):
    """Processes that read more slowly than the client sends, echoing it all back, while
    sshpod and the client rekey every MiB: unread input is often at its limit when a key
    exchange begins, the library holds the output until the exchange ends, and the processes
    stop reading while their output waits. sshpod must go on reading the exchange."""
    client, control, opts = rekeying_every_mib(scn)
    src = random_file(scn.tmp / "src.bin", 32 * MiB)
    # Six slow readers keep much input unread while keys are renewed.
    stream_in_parallel(client, THROTTLED_CAT, opts, src, 6, scn.tmp, timeout=400)
    h.close_control_master(client, control)


@pytest.mark.timeout(600)
def test_a_session_that_does_not_read_holds_up_nobody(scn):
    """One session leaves 20 MiB of input unread while a sibling keeps answering and a third
    moves 100 MiB both ways; nothing is closed, sshpod's memory stays bounded, and the stalled
    session gets every byte once it reads."""
    gw = scn.start()
    client = scn.client(gw)
    control = scn.tmp / "cm"
    opts = h.control_options(control)
    assert client.ssh("rm -f /tmp/go", opts=opts).returncode == 0
    baseline = rss_kib(gw.proc.pid)

    held = random_file(scn.tmp / "held.bin", 20 * MiB)
    stalled = client.popen(
        "while [ ! -e /tmp/go ]; do sleep 0.2; done; cat",
        opts=opts, stdin=held.open("rb"), stdout=(scn.tmp / "held.out").open("wb"),
    )
    scn.procs.append(stalled)
    # The stalled session's input has all gone out: the client is not held back by it.
    h.wait_until(lambda: "cat" in client.ssh("ps -eo args", opts=opts).stdout, 30, "the stalled session started")

    started = time.monotonic()
    bulk_src = random_file(scn.tmp / "bulk.bin", 100 * MiB)
    bulk = client.ssh("cat", opts=opts, stdin_path=bulk_src, stdout_path=scn.tmp / "bulk.out", timeout=300)
    assert bulk.returncode == 0, bulk
    assert same_content(bulk_src, scn.tmp / "bulk.out")
    for i in range(5):
        echo = client.ssh(f"echo alive {i}", opts=opts, timeout=30)
        assert echo.returncode == 0 and echo.stdout.strip() == f"alive {i}", echo
    siblings = time.monotonic() - started
    grown_mib = (rss_kib(gw.proc.pid) - baseline) / 1024
    print(f"siblings done in {siblings:.1f} s while 20 MiB wait; sshpod grew {grown_mib:.1f} MiB")
    assert stalled.poll() is None, "the stalled session ended early"
    assert grown_mib < 16, f"sshpod holds the unread input in memory: +{grown_mib:.1f} MiB"

    assert client.ssh("touch /tmp/go", opts=opts).returncode == 0
    assert stalled.wait(120) == 0
    assert same_content(held, scn.tmp / "held.out"), "the stalled session lost input"
    h.close_control_master(client, control)

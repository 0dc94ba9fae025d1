"""Data through Kubernetes sessions, end to end against kube-sim: sshpod drives the exec and
attach WebSocket itself (channel framing, stdin's end, the terminal channel, the final Status),
so bulk data both ways, sftp both ways, terminal sizes, stdin EOF, stderr and exit codes are
checked here through it, in `connection` mode (exec) and `session` mode (attach)."""

from __future__ import annotations

import asyncio
import re

import asyncssh
import pytest

import harness as h
from test_kubernetes import kube, ks, wait_no_pods  # noqa: F401  (fixtures)
from test_transfer import MiB, random_file, same_content


@pytest.mark.timeout(600)
def test_256_mib_both_ways_through_cat(kube, scn):  # noqa: F811
    gw = kube()
    client = scn.client(gw)
    src = random_file(scn.tmp / "src.bin", 256 * MiB)
    dst = scn.tmp / "dst.bin"
    result = client.ssh("cat", stdin_path=src, stdout_path=dst, timeout=580)
    assert result.returncode == 0, result
    assert dst.stat().st_size == src.stat().st_size, result
    assert same_content(src, dst), "the data came back different"


@pytest.mark.timeout(300)
def test_sftp_put_then_get(kube, scn):  # noqa: F811
    gw = kube()
    client = scn.client(gw)
    src = random_file(scn.tmp / "src.bin", 32 * MiB)
    dst = scn.tmp / "dst.bin"
    batch = scn.tmp / "batch"
    batch.write_text(f"put {src} /tmp/up.bin\nget /tmp/up.bin {dst}\n")
    result = client.run_args(client.sftp_args(opts=["-b", str(batch)]), timeout=280)
    assert result.returncode == 0, result
    assert same_content(src, dst), "the file came back different"


@pytest.mark.parametrize("mode", ["connection", "session"])
def test_stdin_eof_stderr_and_exit_code(kube, scn, mode):  # noqa: F811
    gw = kube({"kubernetes": {"pod": {"mode": mode}}})
    result = scn.client(gw).ssh("cat; echo err >&2; exit 9", input=b"to the end\n")
    assert result.returncode == 9, result
    assert result.stdout == "to the end\n", "stdin ended after all of it arrived"
    assert result.stderr == "err\n", "stderr kept apart"


@pytest.mark.parametrize("mode", ["connection", "session"])
def test_terminal_starts_sized_and_follows_resizes(kube, scn, mode):  # noqa: F811
    gw = kube({"kubernetes": {"pod": {"mode": mode}}})

    async def scenario():
        async with asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                                    known_hosts=None, agent_path=None, config=None) as conn:
            proc = await conn.create_process("stty size; while read _; do stty size; done; exit 4",
                                             term_type="xterm", term_size=(91, 33))
            first = await next_size(proc)
            proc.change_terminal_size(120, 40)
            # The resize and the lines asking for the size travel apart: ask until it shows.
            second = first
            deadline = asyncio.get_running_loop().time() + 30
            while second != "40 120" and asyncio.get_running_loop().time() < deadline:
                proc.stdin.write("\n")
                second = await next_size(proc)
            proc.stdin.write("\x04")  # ^D: the end of the terminal's input
            result = await asyncio.wait_for(proc.wait(), 60)
            return first, second, result.exit_status

    first, second, status = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert (first, second, status) == ("33 91", "40 120", 4)


async def next_size(proc) -> str:
    """The next `rows cols` line of the terminal (echoed input lines are skipped)."""
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise AssertionError("the output ended before a size")
        if re.fullmatch(r"\d+ \d+", line.strip()):
            return line.strip()

"""Moving data: sftp, scp (SFTP and legacy protocol), large streams through a command (also with
rekeying) and local port forwarding to a server inside the container, whose connection is closed
inside once its channel is gone even when the server holds it open."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Callable

import pytest

import harness as h
from test_homes import homes_config, start as homes_start, student
from test_remote_forwarding import agent_processes, inside, master

MiB = 1024 * 1024


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            chunk = min(remaining, MiB)
            f.write(os.urandom(chunk))
            remaining -= chunk
    return path


def same_content(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def test_sftp_put_and_get(scn):
    gw = scn.start()
    client = scn.client(gw)
    src = random_file(scn.tmp / "src.bin", 5 * MiB)
    dst = scn.tmp / "dst.bin"
    batch = scn.tmp / "batch"
    batch.write_text(f"put {src} /tmp/up.bin\nls -l /tmp/up.bin\nget /tmp/up.bin {dst}\n")
    result = client.run_args(client.sftp_args(opts=["-b", str(batch)]), timeout=120)
    assert result.returncode == 0, result
    assert dst.exists(), result
    assert same_content(src, dst), "the file came back different"


@pytest.mark.parametrize("protocol", ["sftp", "legacy"])
def test_scp_both_directions(scn, protocol):
    gw = scn.start()
    client = scn.client(gw)
    # Both copies go through one connection (one container) via a control master.
    opts = h.control_options(scn.control_path(client)) + (["-O"] if protocol == "legacy" else [])
    src = random_file(scn.tmp / "src.bin", 5 * MiB)
    dst = scn.tmp / "dst.bin"
    up = client.run_args(client.scp_args(str(src), client.remote("/tmp/up.bin"), opts=opts), timeout=120)
    assert up.returncode == 0, up
    down = client.run_args(client.scp_args(client.remote("/tmp/up.bin"), str(dst), opts=opts), timeout=120)
    assert down.returncode == 0, down
    assert same_content(src, dst), "the file came back different"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rekey", [False, True], ids=["plain", "rekey-1M"])
def test_large_stream_through_cat(scn, rekey):
    gw = scn.start()
    client = scn.client(gw)
    src = random_file(scn.tmp / "src.bin", 50 * MiB)
    dst = scn.tmp / "dst.bin"
    opts = ["-o", "RekeyLimit=1M"] if rekey else []
    result = client.ssh("cat", opts=opts, stdin_path=src, stdout_path=dst, timeout=280)
    assert result.returncode == 0, result
    assert dst.stat().st_size == src.stat().st_size, result
    assert same_content(src, dst), "the data came back different"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = h.read_until_eof(s, 10)
    return data


def serve_through_forward(scn, client: h.Client, text: str) -> Callable[[], bytes]:
    """Serves `text` over HTTP inside the container, forwarded with `ssh -L` on one
    connection; returns a fetch of it (empty until it answers)."""
    local = free_port()
    serve = (f"mkdir -p /tmp/www && echo {text} > /tmp/www/index.html && "
             "exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www")
    proc = scn.track(client.popen(serve, opts=["-L", f"127.0.0.1:{local}:127.0.0.1:8080",
                                               "-o", "ExitOnForwardFailure=yes"]))

    def fetch() -> bytes:
        if proc.poll() is not None:
            raise AssertionError(f"ssh exited with {proc.returncode}: {proc.stderr.read()!r}")
        response = http_get(local, "/index.html")
        return response if response.startswith(b"HTTP/1.") else b""

    return fetch


def test_local_port_forwarding(scn):
    gw = scn.start(h.FORWARDING)
    client = scn.client(gw)
    fetch = serve_through_forward(scn, client, "hello-through-the-tunnel")

    response = h.wait_until(fetch, 60, "an HTTP answer through the forwarded port")
    assert b" 200 " in response.split(b"\r\n", 1)[0], response
    assert b"hello-through-the-tunnel" in response, response


# Accepts connections on 127.0.0.1:17020 and holds them open, never reading, never closing.
HOLDING_SERVER = (
    "nohup perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1:17020\", "
    "Listen => 8, ReuseAddr => 1) or die $!; my @held; while (my $c = $s->accept) { push @held, $c }' "
    ">/dev/null 2>&1 &"
)


def test_a_forwarded_connection_held_open_inside_is_closed_once_the_client_is_gone(scn):
    user = student(scn)
    gw = homes_start(scn, h.deep_merge(h.FORWARDING, homes_config(grace="10m", mode="user")))
    client, opts = master(scn, gw, user=user)
    assert inside(client, opts, HOLDING_SERVER).returncode == 0
    h.wait_until(lambda: inside(client, opts, "exec 3<>/dev/tcp/127.0.0.1/17020").returncode == 0, 20,
                 "the server inside listening")
    local = free_port()
    linked = client.ssh(opts=[*opts, "-O", "forward", "-L", f"127.0.0.1:{local}:127.0.0.1:17020"])
    assert linked.returncode == 0, linked

    def dialers(c: h.Client, o: list[str]) -> list[str]:
        return [p for p in agent_processes(c, o) if " dial 127.0.0.1 17020" in p]

    with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)  # the end of input; the server inside keeps its end open
        h.wait_until(lambda: dialers(client, opts), 20, "the connection dialled inside")
        ended = client.ssh(opts=[*opts, "-O", "exit"])
        assert ended.returncode == 0, ended
    later = scn.client(gw, user=user)
    h.wait_until(lambda: not dialers(later, []), 30, "no dial helper left in the container")
    assert later.ssh("pgrep -x perl >/dev/null && echo serving").stdout == "serving\n", "the server lives on"

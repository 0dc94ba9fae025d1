"""The way IDEs use SSH, scripted, on Docker and on kube-sim.

VS Code Remote-SSH runs `ssh -T -D PORT host bash`, writes its installer script to that
shell's stdin, waits for the script to print the port its server listens on inside the
machine, and then reaches the server through the SOCKS proxy, with several connections at
once, for as long as the shell lives. JetBrains Gateway keeps one SSH connection and runs on it
a series of commands (what is this machine, where is home), uploads its backend over SFTP,
starts it in the background with one more command, and reaches it through a local forward on
the same connection. Both need every channel of a connection to reach the same container, a
background server to outlive the command that started it, and forwarding to the container's
loopback. asyncssh plays Gateway's client (one connection, many channels); OpenSSH plays VS
Code's."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import asyncssh
import pytest

import harness as h
from test_kubernetes import kube, ks  # noqa: F401  (fixtures)

# The editor's server inside the container, as the installer starts it: detached from the
# shell's streams, so the shell (and the SSH session) ends when the client closes its stdin.
SERVER_PORT = 8123
INSTALLER = (
    "uname -s\n"
    'echo "home=$HOME"\n'
    "mkdir -p /tmp/vscode-server/www && echo editor-ready > /tmp/vscode-server/www/index.html\n"
    f"busybox httpd -f -p 127.0.0.1:{SERVER_PORT} -h /tmp/vscode-server/www </dev/null >/dev/null 2>&1 &\n"
    f"echo listeningOn=={SERVER_PORT}==\n"
)


@pytest.fixture(params=["docker", "kube-sim"])
def gateway(request, scn):
    """A gateway with forwarding on, on each backend."""
    if request.param == "docker":
        return scn.start(h.FORWARDING)
    return request.getfixturevalue("kube")(h.FORWARDING)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def get_through_socks(socks_port: int, port: int, path: str) -> bytes:
    """An HTTP GET of 127.0.0.1:`port` (as the remote side sees it) through a SOCKS5 proxy with
    no authentication, as VS Code's client makes it. Empty if the proxy refused the connection."""
    with socket.create_connection(("127.0.0.1", socks_port), timeout=10) as s:
        s.sendall(b"\x05\x01\x00")
        assert recv_exact(s, 2) == b"\x05\x00", "the SOCKS proxy wants authentication"
        host = b"127.0.0.1"
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + port.to_bytes(2, "big"))
        reply = recv_exact(s, 4)
        if reply[1] != 0:
            return b""
        bound = {1: 4, 4: 16}.get(reply[3])
        recv_exact(s, (bound if bound else recv_exact(s, 1)[0]) + 2)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        return h.read_until_eof(s, 10)


def test_vscode_remote_ssh_installer_shell_and_socks_proxy(scn, gateway):
    client = scn.client(gateway)
    socks = h.free_port()
    shell = scn.track(client.popen("bash", opts=["-T", "-D", f"127.0.0.1:{socks}",
                                                 "-o", "ExitOnForwardFailure=yes"], stdin=subprocess.PIPE))
    shell.stdin.write(INSTALLER.encode())
    shell.stdin.flush()
    said = [h.read_line(shell.stdout, h.CONTAINER_TIMEOUT) for _ in range(3)]
    assert said[0] == b"Linux\n" and said[1].startswith(b"home=/"), said
    assert said[2] == f"listeningOn=={SERVER_PORT}==\n".encode(), said

    def fetch() -> bytes:
        response = get_through_socks(socks, SERVER_PORT, "/index.html")
        return response if response.startswith(b"HTTP/1.") else b""

    first = h.wait_until(fetch, 60, "the editor's server through the SOCKS proxy")
    assert b"editor-ready" in first, first
    # The editor opens several connections at once (extension host, file watcher, terminals).
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: get_through_socks(socks, SERVER_PORT, "/index.html"), range(8)))
    assert all(b"editor-ready" in a for a in answers), answers

    # The window closes: the installer shell's stdin ends, and so does the session.
    shell.stdin.close()
    assert shell.wait(h.COMMAND_TIMEOUT) == 0, shell.stderr.read()


async def gateway_client(scn, gw, local_script) -> tuple[str, bytes, str]:
    async with asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                                known_hosts=None, agent_path=None, config=None,
                                preferred_auth="publickey") as conn:
        probe = await conn.run("uname -sm; echo $HOME", check=True)
        home = probe.stdout.splitlines()[1]
        async with conn.start_sftp_client() as sftp:
            await sftp.makedirs("/tmp/jetbrains/backend", exist_ok=True)
            await sftp.put(str(local_script), "/tmp/jetbrains/backend/run.sh")
        started = await conn.run("sh /tmp/jetbrains/backend/run.sh", check=True)
        port = int(started.stdout.strip())
        listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", port)

        def fetch() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{listener.get_port()}/", timeout=5) as r:
                    return r.read()
            except OSError:
                return None

        body = await asyncio.to_thread(h.wait_until, fetch, 60, "the backend through the local forward")
        # A later command on the same connection finds the backend still running.
        alive = await conn.run(f"busybox wget -q -O - http://127.0.0.1:{port}/", check=True)
        listener.close()
        return home, body, alive.stdout


def test_jetbrains_gateway_commands_sftp_upload_background_backend_and_local_forward(scn, gateway, tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(
        "mkdir -p /tmp/jetbrains/www && echo backend-ready > /tmp/jetbrains/www/index.html\n"
        "busybox httpd -f -p 127.0.0.1:8124 -h /tmp/jetbrains/www </dev/null >/dev/null 2>&1 &\n"
        "echo 8124\n")
    home, body, alive = asyncio.run(asyncio.wait_for(gateway_client(scn, gateway, script), 300))
    assert home.startswith("/"), home
    assert body == b"backend-ready\n", body
    assert alive == "backend-ready\n", alive

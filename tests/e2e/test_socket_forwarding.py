"""Unix socket forwarding on Docker and kube-sim, with OpenSSH and asyncssh: `ssh -R /path:...`
(`streamlocal-forward@openssh.com`) listens on a socket inside the container or pod, `ssh -L
local:/path` (`direct-streamlocal@openssh.com`) reaches one, cancelling removes the socket, and
each kind is refused unless its own security mode turns it on."""

from __future__ import annotations

import asyncio
import socket

import asyncssh

import harness as h
from test_kubernetes import kube, ks  # noqa: F401  (fixtures)
from test_remote_forwarding import REFUSED, LocalServer, forward, inside, master, pong, start  # noqa: F401

BOTH = {"security": {"forwarding": {"socketListenMode": "enable", "socketForwardingMode": "enable"}}}


def socket_exists(client: h.Client, opts: list[str], path: str) -> bool:
    result = inside(client, opts, f"test -S {path} && echo yes || echo no")
    assert result.returncode == 0, result
    return result.stdout.strip() == "yes"


def test_a_socket_listener_inside_reached_through_a_local_socket_and_cancelled(start, scn):
    gw = start(BOTH)
    server = LocalServer(pong)
    scn.finalizers.append(server.close)
    client, opts = master(scn, gw)
    added = forward(client, opts, f"/tmp/inside.sock:127.0.0.1:{server.port}")
    assert added.returncode == 0, added
    assert socket_exists(client, opts, "/tmp/inside.sock")

    # -L from a socket here to the socket there: both socket kinds on one path.
    local = scn.sock_dir / "local.sock"
    linked = client.ssh(opts=[*opts, "-O", "forward", "-L", f"{local}:/tmp/inside.sock"])
    assert linked.returncode == 0, linked
    for line in (b"one\n", b"two\n"):
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(30)
            conn.connect(str(local))
            conn.sendall(line)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = conn.recv(1024)
                if not chunk:
                    break
                answer += chunk
            assert answer == b"pong:" + line
    gw.wait_for_log(r"remote socket forward connection passed to the client.*path=\"?/tmp/inside\.sock", 10)

    cancelled = forward(client, opts, f"/tmp/inside.sock:127.0.0.1:{server.port}", cancel=True)
    assert cancelled.returncode == 0, cancelled
    h.wait_until(lambda: not socket_exists(client, opts, "/tmp/inside.sock"), 20, "the socket inside is removed")
    assert not server.errors, server.errors


def asyncssh_connect(scn, gw):
    return asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey")


def test_asyncssh_unix_server_and_connection(start, scn):
    gw = start(BOTH)

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            class Echo(asyncssh.SSHUNIXSession):
                def connection_made(self, chan):
                    self.chan = chan

                def data_received(self, data, datatype):
                    self.chan.write(b"unix:" + data)
                    self.chan.write_eof()

            server = await conn.create_unix_server(lambda: Echo(), "/tmp/app.sock")
            reader, writer = await conn.open_unix_connection("/tmp/app.sock")
            writer.write(b"hello")
            assert await asyncio.wait_for(reader.read(), 30) == b"unix:hello"
            writer.close()
            server.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_each_socket_kind_is_refused_unless_its_mode_is_enabled(scn):
    gw = scn.start({"security": {"forwarding": {"forwardingMode": "enable", "reverseForwardingMode": "enable"}}})
    result = scn.client(gw).ssh("true", opts=["-o", "ExitOnForwardFailure=yes", "-R", "/tmp/x.sock:127.0.0.1:9"])
    assert result.returncode != 0 and "remote port forwarding failed" in result.stderr, result
    gw.wait_for_log(rf"{REFUSED}.*rule=\"?security\.forwarding\.socketListenMode", 10)

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            try:
                await conn.open_unix_connection("/tmp/x.sock")
            except asyncssh.ChannelOpenError as exc:
                return exc.code
            return None

    code = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
    gw.wait_for_log(r"socket forwarding refused.*path=\"?/tmp/x\.sock", 10)

"""Unix socket forwarding on Docker and kube-sim, with OpenSSH and asyncssh: `ssh -R /path:...`
(`streamlocal-forward@openssh.com`) listens on a socket inside the container or pod, `ssh -L
local:/path` (`direct-streamlocal@openssh.com`) reaches one, cancelling removes the socket, a
connection a service inside holds open is closed once its channel is gone (no helper left in a
container or pod that stays), and each kind is refused unless its own security mode turns it on."""

from __future__ import annotations

import asyncio
import socket

import asyncssh
import pytest

import harness as h
from test_homes import homes_config, start as homes_start, student
from test_kubernetes import kube, ks, pods  # noqa: F401  (fixtures)
from test_remote_forwarding import (  # noqa: F401
    REFUSED, LocalServer, agent_processes, forward, inside, master, pong, start,
)

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


@pytest.fixture(params=["docker", "kube-sim"])
def kept(request, scn):
    """A gateway whose container outlives the connection (Docker `mode: user`, a persistent
    pod on kube-sim), and the user to log in as."""
    if request.param == "docker":
        user = student(scn)
        yield homes_start(scn, h.deep_merge(BOTH, homes_config(grace="10m", mode="user"))), user
        return
    kube, ks = request.getfixturevalue("kube"), request.getfixturevalue("ks")
    name = f"persistent-{scn.run_id}"
    yield kube(h.deep_merge(BOTH, {"kubernetes": {"pod": {
        "mode": "persistent", "createMissingPods": True,
        "metadata": {"name": name, "namespace": "default", "labels": {"test": scn.run_id}},
    }}})), "alice"
    assert [p["metadata"]["name"] for p in pods(ks, f"test={scn.run_id}")] == [name], "the pod stays"
    ks.kubectl("delete", "pod", name, "--wait=true")


# Accepts connections on /tmp/held.sock and holds them open, never reading, never closing.
HOLDING_SERVER = (
    "nohup perl -MIO::Socket::UNIX -e 'my $s = IO::Socket::UNIX->new(Local => \"/tmp/held.sock\", "
    "Listen => 8) or die $!; my @held; while (my $c = $s->accept) { push @held, $c }' >/dev/null 2>&1 &"
)


def dialers(client: h.Client, opts: list[str]) -> list[str]:
    return [p for p in agent_processes(client, opts) if " dial-unix " in p]


def test_a_connection_held_open_inside_is_closed_once_its_channel_is_gone(kept, scn):
    gw, user = kept
    client, opts = master(scn, gw, user=user)
    assert inside(client, opts, HOLDING_SERVER).returncode == 0
    h.wait_until(lambda: socket_exists(client, opts, "/tmp/held.sock"), 20, "the service inside listening")
    local = scn.sock_dir / "held.sock"
    linked = client.ssh(opts=[*opts, "-O", "forward", "-L", f"{local}:/tmp/held.sock"])
    assert linked.returncode == 0, linked
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(str(local))
        conn.sendall(b"request\n")
        conn.shutdown(socket.SHUT_WR)  # the end of input; the service inside keeps its end open
        h.wait_until(lambda: dialers(client, opts), 20, "the connection dialled inside")
        ended = client.ssh(opts=[*opts, "-O", "exit"])
        assert ended.returncode == 0, ended
    later = scn.client(gw, user=user)
    h.wait_until(lambda: not dialers(later, []), 30, "no dial-unix helper left")
    assert socket_exists(later, [], "/tmp/held.sock"), "the service inside lives on"


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

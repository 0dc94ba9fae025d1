"""Remote forwarding (`ssh -R`, `tcpip-forward`) on Docker and kube-sim, with OpenSSH, asyncssh
and paramiko: the listener is inside the container or pod, port 0 gets the port actually bound,
each connection reaches the client's side with its data intact both ways, cancelling stops the
listener inside, a disconnect leaves no helper in a container or pod that stays, every refusal (security
policy, key options, bind address, limit) is told and logged, and a client that stops taking
connections has 32 waiting while the rest are closed inside."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import threading

import asyncssh
import paramiko
import pytest

import harness as h
from test_homes import homes_config, start as homes_start, student
from test_kubernetes import kube, ks, pods  # noqa: F401  (fixtures)

ENABLED = {"security": {"forwarding": {"reverseForwardingMode": "enable"}}}
MIB16 = 16 * 1024 * 1024
REFUSED = "remote forward refused"


class LocalServer:
    """A TCP server on the client's side of the forward. `handle(conn)` serves each
    connection on its own thread."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(60)
                self.handle(conn)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def close(self) -> None:
        self.sock.close()


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(min(1 << 16, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def pong(conn: socket.socket) -> None:
    """Answers one line `X` with `pong:X`."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(1024)
        if not chunk:
            break
        line += chunk
    conn.sendall(b"pong:" + line)


@pytest.fixture(params=["docker", "kube-sim"])
def start(request, scn):
    """Starts gateways on each backend."""
    if request.param == "docker":
        return scn.start
    return request.getfixturevalue("kube")


@pytest.fixture
def local(scn):
    servers: list[LocalServer] = []

    def start(handle=pong) -> LocalServer:
        server = LocalServer(handle)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        assert not server.errors, server.errors


def master(scn, gw, name: str = "cm", **kw) -> tuple[h.Client, list[str]]:
    """A ControlMaster connection: forwards and commands then share one container."""
    client = scn.client(gw, **kw)
    opts = h.control_options(scn.control_path(client, name))
    result = client.ssh("true", opts=opts)
    assert result.returncode == 0, result
    return client, opts


def inside(client: h.Client, opts: list[str], script: str, **kw) -> h.Result:
    """Runs a bash script in the container (on stdin: no quoting between us and it)."""
    return client.ssh("bash -s", opts=opts, input=script, **kw)


def ask_inside(client: h.Client, opts: list[str], port: int, line: str = "ping") -> h.Result:
    """Connects to `port` inside the container, sends a line, prints the answer."""
    return inside(client, opts, f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{line}\\n' >&3 && head -n1 <&3")


def listening_inside(client: h.Client, opts: list[str], port: int) -> bool:
    """Whether something listens on `port` in the container (read from /proc, no tools needed)."""
    result = client.ssh("cat /proc/net/tcp /proc/net/tcp6", opts=opts)
    assert result.returncode == 0, result
    return any(
        fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
        for fields in (line.split() for line in result.stdout.splitlines()[1:])
        if len(fields) > 3 and ":" in fields[1]
    )


def agent_processes(client: h.Client, opts: list[str]) -> list[str]:
    result = inside(client, opts, "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done")
    assert result.returncode == 0, result
    return [line for line in result.stdout.splitlines() if "sshpod-agent" in line]


def forward(client: h.Client, opts: list[str], spec: str, cancel: bool = False) -> h.Result:
    return client.ssh(opts=[*opts, "-O", "cancel" if cancel else "forward", "-R", spec])


def refused_in_log(gw: h.Gateway, rule: str) -> None:
    gw.wait_for_log(rf"{REFUSED}.*rule=\"?{re.escape(rule)}", 10)


# OpenSSH --------------------------------------------------------------------------------------


def test_port_0_is_answered_with_the_port_bound_inside_and_lines_go_both_ways(start, scn, local):
    gw = start(ENABLED)
    server = local()
    # Without a ControlMaster, as most people type it: ssh says which port it got.
    plain = scn.client(gw).ssh("true", opts=["-v", "-o", "ExitOnForwardFailure=yes", "-R", f"0:127.0.0.1:{server.port}"])
    assert plain.returncode == 0, plain
    assert re.search(r"Allocated port \d+ for remote forward", plain.stderr), plain

    client, opts = master(scn, gw)
    added = forward(client, opts, f"0:127.0.0.1:{server.port}")
    assert added.returncode == 0, added
    port = int(added.stdout.strip())
    assert 0 < port < 65536
    assert listening_inside(client, opts, port)
    first = ask_inside(client, opts, port, "ping")
    assert first.stdout == "pong:ping\n", first
    second = ask_inside(client, opts, port, "again")
    assert second.stdout == "pong:again\n", second
    gw.wait_for_log(rf"remote forward listening inside the container.*port={port}", 10)


def test_sixteen_mebibytes_cross_the_forward_intact_each_way(start, scn, local):
    gw = start(ENABLED)
    upload_digest: list[str] = []

    def receive(conn: socket.socket) -> None:
        data = recv_exactly(conn, MIB16)
        upload_digest.append(hashlib.sha256(data).hexdigest())
        conn.sendall(f"{len(data)}\n".encode())

    payload = os.urandom(MIB16)

    def send(conn: socket.socket) -> None:
        conn.sendall(payload)

    up, down = local(receive), local(send)
    client, opts = master(scn, gw)
    assert forward(client, opts, f"17001:127.0.0.1:{up.port}").returncode == 0
    assert forward(client, opts, f"17002:127.0.0.1:{down.port}").returncode == 0

    script = ("head -c 16777216 /dev/urandom > /tmp/blob && sha256sum /tmp/blob && "
              "exec 3<>/dev/tcp/127.0.0.1/17001 && cat /tmp/blob >&3 && head -n1 <&3 && "
              "exec 4<>/dev/tcp/127.0.0.1/17002 && sha256sum <&4")
    result = inside(client, opts, script, timeout=120)
    assert result.returncode == 0, result
    sent_digest, received_count, downloaded = result.stdout.splitlines()
    assert received_count == str(MIB16)
    assert upload_digest == [sent_digest.split()[0]], "container to client"
    assert downloaded.split()[0] == hashlib.sha256(payload).hexdigest(), "client to container"


def test_cancelling_a_forward_stops_its_listener_inside(start, scn, local):
    gw = start(ENABLED)
    server = local()
    client, opts = master(scn, gw)
    assert forward(client, opts, f"17003:127.0.0.1:{server.port}").returncode == 0
    assert ask_inside(client, opts, 17003).stdout == "pong:ping\n"
    assert any(" listen " in p for p in agent_processes(client, opts))

    cancelled = forward(client, opts, f"17003:127.0.0.1:{server.port}", cancel=True)
    assert cancelled.returncode == 0, cancelled
    h.wait_until(lambda: not listening_inside(client, opts, 17003), 20, "the listener inside is gone")
    h.wait_until(lambda: not agent_processes(client, opts), 20, "no forwarding helper left inside")
    refused = ask_inside(client, opts, 17003)
    assert refused.returncode != 0 and "Connection refused" in refused.stderr, refused
    gw.wait_for_log(r"remote forward stopped listening.*port=17003", 10)


def test_a_client_that_has_no_target_gets_the_inside_connection_closed(start, scn):
    gw = start(ENABLED)
    client, opts = master(scn, gw)
    # Nothing listens on the client's side: OpenSSH refuses the channel it is offered.
    dead = h.free_port()
    assert forward(client, opts, f"17004:127.0.0.1:{dead}").returncode == 0
    result = ask_inside(client, opts, 17004)
    assert result.stdout == "", result
    assert listening_inside(client, opts, 17004), "the forward stays for the next connection"


def test_remote_forwarding_is_off_unless_the_policy_turns_it_on(scn, local):
    gw = scn.start()
    server = local()
    result = scn.client(gw).ssh("true", opts=["-o", "ExitOnForwardFailure=yes", "-R", f"0:127.0.0.1:{server.port}"])
    assert result.returncode != 0 and "remote port forwarding failed" in result.stderr, result
    refused_in_log(gw, "security.forwarding.reverseForwardingMode")


def test_other_bind_addresses_need_gateway_ports(start, scn, local):
    gw = start(ENABLED)
    server = local()
    result = scn.client(gw).ssh("true", opts=["-o", "ExitOnForwardFailure=yes",
                                              "-R", f"0.0.0.0:0:127.0.0.1:{server.port}"])
    assert result.returncode != 0 and "remote port forwarding failed" in result.stderr, result
    refused_in_log(gw, "security.forwarding.gatewayPorts")

    open_gw = start(h.deep_merge(ENABLED, {"security": {"forwarding": {"gatewayPorts": "clientspecified"}}}))
    client, opts = master(scn, open_gw)
    assert forward(client, opts, f"0.0.0.0:17005:127.0.0.1:{server.port}").returncode == 0
    tcp = client.ssh("cat /proc/net/tcp", opts=opts).stdout
    assert re.search(rf"00000000:{17005:04X} 00000000:0000 0A", tcp), tcp  # 0.0.0.0:17005 listening


def test_key_options_no_port_forwarding_and_permitlisten_are_obeyed(start, scn, local):
    server = local()
    pub = scn.keys["alice"].with_suffix(".pub").read_text().strip()
    keys_file = scn.tmp / "authorized_keys" / "alice"
    keys_file.write_text(f"no-port-forwarding {pub}\n")
    gw = start(ENABLED)
    result = scn.client(gw).ssh("true", opts=["-o", "ExitOnForwardFailure=yes", "-R", f"17006:127.0.0.1:{server.port}"])
    assert result.returncode != 0 and "remote port forwarding failed" in result.stderr, result
    refused_in_log(gw, "no-port-forwarding")

    keys_file.write_text(f'permitlisten="17007" {pub}\n')
    client, opts = master(scn, gw, name="cm-permit")
    other = forward(client, opts, f"17008:127.0.0.1:{server.port}")
    assert other.returncode != 0, other
    refused_in_log(gw, "permitlisten")
    assert forward(client, opts, f"17007:127.0.0.1:{server.port}").returncode == 0
    assert ask_inside(client, opts, 17007).stdout == "pong:ping\n"


# asyncssh and paramiko ------------------------------------------------------------------------


def asyncssh_connect(scn, gw):
    return asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey")


def test_asyncssh_remote_forward_sees_the_originator_and_a_limit_on_listeners(start, scn):
    gw = start(ENABLED)

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            seen: list[tuple[str, int]] = []

            class Echo(asyncssh.SSHTCPSession):
                def connection_made(self, chan):
                    self.chan = chan

                def data_received(self, data, datatype):
                    self.chan.write(b"echo:" + data)

            def factory(orig_host, orig_port):
                seen.append((orig_host, orig_port))
                return Echo()

            listener = await conn.create_server(factory, "localhost", 0)
            port = listener.get_port()
            script = f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'hi\\n' >&3 && head -n1 <&3"
            result = await conn.run(f"bash -c \"{script}\"", check=False)
            assert result.stdout == "echo:hi\n", result
            assert seen and seen[0][0] == "127.0.0.1" and seen[0][1] > 0, seen

            # Sixteen forwards at once are allowed (one is open), the seventeenth is refused.
            more = [await conn.forward_remote_port("localhost", 0, "127.0.0.1", 9) for _ in range(15)]
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("localhost", 0, "127.0.0.1", 9)
            more[0].close()
            await more[0].wait_closed()
            again = await conn.forward_remote_port("localhost", 0, "127.0.0.1", 9)
            assert again.get_port() > 0
            listener.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
    refused_in_log(gw, "remote forward limit")


def test_paramiko_request_port_forward(start, scn):
    gw = start(ENABLED)
    transport = paramiko.Transport(("127.0.0.1", gw.port))
    try:
        transport.connect(username="alice", pkey=paramiko.Ed25519Key.from_private_key_file(str(scn.keys["alice"])))
        got: list[bytes] = []
        done = threading.Event()

        def handler(channel, origin, server):
            def serve():
                data = b""
                while not data.endswith(b"\n"):
                    chunk = channel.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                got.append(data)
                channel.sendall(b"paramiko:" + data)
                channel.close()
                done.set()
            threading.Thread(target=serve, daemon=True).start()

        port = transport.request_port_forward("localhost", 0, handler)
        assert port > 0
        session = transport.open_session()
        session.exec_command(f"bash -c \"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'p\\n' >&3 && head -n1 <&3\"")
        output = b""
        while True:
            chunk = session.recv(1024)
            if not chunk:
                break
            output += chunk
        assert session.recv_exit_status() == 0
        assert done.wait(30)
        assert got == [b"p\n"] and output == b"paramiko:p\n", (got, output)
        transport.cancel_port_forward("localhost", port)
    finally:
        transport.close()


def test_a_client_that_stops_taking_connections_has_32_waiting_and_the_rest_closed_inside(start, scn):
    gw = start(ENABLED)
    transport = paramiko.Transport(("127.0.0.1", gw.port))
    release = threading.Event()
    calls: list[tuple] = []
    try:
        transport.connect(username="alice", pkey=paramiko.Ed25519Key.from_private_key_file(str(scn.keys["alice"])))

        def handler(channel, origin, server):
            calls.append(origin)
            if len(calls) == 1:
                # paramiko calls this on its transport's own thread: while it waits, the client
                # answers nothing more, as a client that stopped taking connections does.
                channel.sendall(b"taken\n")
                release.wait(120)
            channel.close()

        port = transport.request_port_forward("localhost", 0, handler)
        session = transport.open_session()
        # The first connection is taken; once it is, 39 more while the client takes none.
        script = (f"exec 3<>/dev/tcp/127.0.0.1/{port} && read -r line <&3 && "
                  f"for i in $(seq 39); do exec {{fd}}<>/dev/tcp/127.0.0.1/{port} || exit 1; done; echo opened")
        session.exec_command(f"bash -c '{script}'")
        closed = "remote forward connection closed: too many are waiting for the client"
        h.wait_until(lambda: gw.log.count(closed) >= 7, 60, "connections past the limit closed inside")
        assert gw.log.count(closed) == 7, "32 wait for the client, the 7 others are closed"
        release.set()
        h.wait_until(lambda: len(calls) == 33, 60, "the 32 waiting connections reach the client once it takes them")
        output = b""
        while True:
            chunk = session.recv(1024)
            if not chunk:
                break
            output += chunk
        assert session.recv_exit_status() == 0 and output == b"opened\n", output
    finally:
        release.set()
        transport.close()


# A pod that outlives the connection ---------------------------------------------------------


def test_a_disconnect_leaves_no_helper_running_in_a_kept_pod(kube, scn, ks, local):
    name = f"persistent-{scn.run_id}"
    gw = kube(h.deep_merge(ENABLED, {"kubernetes": {"pod": {
        "mode": "persistent", "createMissingPods": True,
        "metadata": {"name": name, "namespace": "default", "labels": {"test": scn.run_id}},
    }}}))
    server = local()
    held = local(lambda conn: conn.recv(1))  # keeps its end open until the connection goes
    client, opts = master(scn, gw)
    assert forward(client, opts, f"17010:127.0.0.1:{server.port}").returncode == 0
    assert forward(client, opts, f"17011:127.0.0.1:{held.port}").returncode == 0
    assert ask_inside(client, opts, 17010).stdout == "pong:ping\n"
    # A process inside keeps a forwarded connection open, and idle, across the disconnect.
    opened = inside(client, opts, "nohup sleep 600 3<>/dev/tcp/127.0.0.1/17011 >/dev/null 2>&1 &")
    assert opened.returncode == 0, opened
    h.wait_until(lambda: any(" take " in p for p in agent_processes(client, opts)), 20,
                 "the held connection taken")

    ended = client.ssh(opts=[*opts, "-O", "exit"])
    assert ended.returncode == 0, ended
    later = scn.client(gw)
    h.wait_until(lambda: not agent_processes(later, []), 30, "no forwarding helper left in the pod")
    assert not listening_inside(later, [], 17010) and not listening_inside(later, [], 17011)
    assert [p["metadata"]["name"] for p in pods(ks, f"test={scn.run_id}")] == [name]
    ks.kubectl("delete", "pod", name, "--wait=true")


def test_a_disconnect_leaves_no_helper_running_in_a_kept_user_container(scn, local):
    user = student(scn)
    gw = homes_start(scn, h.deep_merge(ENABLED, homes_config(grace="10m", mode="user")))
    server = local()
    held = local(lambda conn: conn.recv(1))  # keeps its end open until the connection goes
    client, opts = master(scn, gw, user=user)
    assert forward(client, opts, f"17010:127.0.0.1:{server.port}").returncode == 0
    assert forward(client, opts, f"17011:127.0.0.1:{held.port}").returncode == 0
    assert ask_inside(client, opts, 17010).stdout == "pong:ping\n"
    # A process inside keeps a forwarded connection open, and idle, across the disconnect.
    opened = inside(client, opts, "nohup sleep 600 3<>/dev/tcp/127.0.0.1/17011 >/dev/null 2>&1 &")
    assert opened.returncode == 0, opened
    h.wait_until(lambda: any(" take " in p for p in agent_processes(client, opts)), 20,
                 "the held connection taken")
    [kept] = h.containers(scn.run_id, running_only=True)

    ended = client.ssh(opts=[*opts, "-O", "exit"])
    assert ended.returncode == 0, ended
    later = scn.client(gw, user=user)
    h.wait_until(lambda: not agent_processes(later, []), 30, "no forwarding helper left in the container")
    assert not listening_inside(later, [], 17010) and not listening_inside(later, [], 17011)
    assert later.ssh("pgrep -x sleep >/dev/null && echo held").stdout == "held\n", "the process inside lives on"
    assert h.containers(scn.run_id, running_only=True) == [kept], "the user's container stays"


def test_a_pod_with_nowhere_to_put_the_helper_refuses_with_a_short_reason(kube, scn, local):
    read_only = {"kubernetes": {"pod": {"spec": {"containers": [{
        "name": "shell", "image": h.GUEST_IMAGE, "securityContext": {"readOnlyRootFilesystem": True},
    }]}}}}
    gw = kube(h.deep_merge(ENABLED, read_only))
    server = local()
    client, opts = master(scn, gw)
    refused = forward(client, opts, f"0:127.0.0.1:{server.port}")
    assert refused.returncode != 0, refused
    gw.wait_for_log(r"installing the forwarding helper.*no directory to put it in", 10)
    assert client.ssh("echo still-here", opts=opts).stdout == "still-here\n", "the session goes on"


def test_a_busybox_only_pod_under_identity_listens_as_the_user(kube, scn, local, sh_only_image):
    # The pod runs as root and every process becomes the user through busybox's su; the image
    # has no /tmp, so the pod gets one as an emptyDir, as read-only pods do.
    shell = {"name": "shell", "image": sh_only_image, "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}
    busybox_only = {"identity": {"enable": True}, "kubernetes": {"pod": {"spec": {
        "containers": [shell], "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
    }}}}
    gw = kube(h.deep_merge(ENABLED, busybox_only))
    server = local()
    client, opts = master(scn, gw)
    added = forward(client, opts, f"0:127.0.0.1:{server.port}")
    assert added.returncode == 0, added
    port = int(added.stdout.strip())
    # busybox nc ends at the end of its input: the input stays open until the answer is in.
    script = ("(echo ping; i=0; while [ ! -s /tmp/answer ] && [ $i -lt 600 ]; do usleep 50000; i=$((i+1)); done)"
              f" | busybox nc 127.0.0.1 {port} > /tmp/answer; cat /tmp/answer")
    answer = client.ssh(script, opts=opts)
    assert answer.stdout == "pong:ping\n", answer
    owners = client.ssh("for p in /proc/[0-9]*; do grep -q sshpod-agent $p/cmdline 2>/dev/null && "
                        "busybox stat -c %U $p; done", opts=opts)
    assert owners.stdout.split() and set(owners.stdout.split()) == {"alice"}, owners

"""ContainerSSH's `sshproxy` backend: logins passed on to a real OpenSSH sshd that the test
starts on a loopback port with its own host key and authorized_keys. Terminals, commands with
their exit status, signals coming back as exit-signal, environment through AcceptEnv, sftp and
scp, `ssh -L`, `ssh -R`, socket forwards, `ssh -A` and `ssh -X`/`-Y` passed on to the upstream
server; host keys that are not trusted, a server that is down or refuses sshpod's key;
`usernamePassThrough`; a config server sending one user there while the others get containers;
and a proxied session's recording verified by `sshpod audit verify`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import asyncssh
import pexpect
import pytest

import harness as h
from test_audit import complete_recordings, events, recording
from test_kubernetes import kube, ks, pods  # noqa: F401 - fixtures
from test_remote_forwarding import forward, local, master  # noqa: F401 - `local` is a fixture
from test_x11_forwarding import DISPLAY_CLOSES, SHOW, X_CLIENT, trusted, xserver  # noqa: F401 - `xserver` is a fixture

sys.path.insert(0, str(h.REPO_ROOT / "tests" / "webhook_server"))
from containerssh_webhooks import WebhookServer  # noqa: E402

SSHD = "/usr/sbin/sshd"


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


class Upstream:
    """An OpenSSH sshd of the test's own: loopback, a free port, its own host key, config and
    authorized_keys (per user, `authorized_keys/%u`), logging to a file. It logs in as root,
    the only account every machine has; a marker file tells its sessions from containers'."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(mode=0o700)
        (self.dir / "authorized_keys").mkdir()
        self.host_key = self.dir / "host_ed25519_key"
        self.client_key = self.dir / "sshpod_key"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)],
                           check=True, stdin=subprocess.DEVNULL)
        self.authorize("root", self.client_key)
        self.marker = self.dir / "marker"
        self.marker.write_text("upstream-host\n")
        self.port = h.free_port()
        self.log_path = self.dir / "sshd.log"
        self.proc: subprocess.Popen | None = None

    def authorize(self, user: str, key: Path) -> None:
        with open(self.dir / "authorized_keys" / user, "a") as f:
            f.write(key.with_suffix(".pub").read_text())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key.with_suffix(".pub"))

    def start(self, first: tuple[str, ...] = ()) -> "Upstream":
        # sshd keeps the first value it reads for a keyword: `first` overrides what follows.
        lines = [
            *first,
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}/%u",
            "StrictModes no",  # the files live under the test's temporary directory
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "AcceptEnv LANG LC_*",
            "AllowTcpForwarding yes",
            # `ssh -X`: sshd runs xauth with the session's environment, so the cookie goes to a
            # file of the test's own rather than root's home.
            "X11Forwarding yes",
            "XAuthLocation /usr/bin/xauth",
            f"SetEnv XAUTHORITY={self.dir / 'xauthority'}",
            "LogLevel DEBUG1",  # shows the channel requests that reach it
            "Subsystem sftp /usr/lib/openssh/sftp-server",
        ]
        (self.dir / "sshd_config").write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                     stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT)
        h.wait_until(lambda: self.proc.poll() is not None or h.port_open(self.port), 30, "sshd listening")
        assert self.proc.poll() is None, self.log

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connections(self) -> int:
        """Established TCP connections to this sshd."""
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{self.port} )"],
                             capture_output=True, text=True, check=True).stdout
        return len([line for line in out.splitlines() if line.strip()])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # The sessions it forked end with their clients; the listener ends here.
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.log_file.close()

    def section(self, **overrides) -> dict:
        """The `sshproxy` section that reaches this server."""
        section = {
            "server": "127.0.0.1",
            "port": self.port,
            "username": "root",
            "privateKey": str(self.client_key),
            "allowedHostKeyFingerprints": [self.fingerprint],
            "timeout": "10s",
        }
        section.update(overrides)
        return section


def upstream(scn, first: tuple[str, ...] = ()) -> Upstream:
    server = Upstream(Path(scn.sock_dir) / "upstream")
    server.start(first)
    scn.finalizers.append(server.stop)
    # Nothing of a login may stay connected upstream once its client has gone.
    scn.leak_checks.append(lambda: h.wait_until(lambda: server.connections() == 0, h.CLEANUP_TIMEOUT,
                                                "no connection left to the upstream sshd"))
    return server


def proxied(server: Upstream, **overrides) -> dict:
    return {"backend": "sshproxy", "sshproxy": server.section(**overrides)}


def test_a_shell_gets_a_terminal_upstream_its_resizes_and_its_exit_status(scn):
    server = upstream(scn)
    gw = scn.start(proxied(server))
    client = scn.client(gw)
    env = dict(os.environ, TERM="xterm-256color")
    env.pop("SSH_AUTH_SOCK", None)
    args = client.ssh_args(opts=["-tt"])
    shell = pexpect.spawn(args[0], args[1:], env=env, timeout=60, encoding="utf-8", dimensions=(30, 100))
    try:
        shell.sendline("tty; echo term=$TERM; stty size; cat " + str(server.marker))
        shell.expect(r"/dev/pts/\d+")
        shell.expect("term=xterm-256color")
        shell.expect("30 100")
        shell.expect("upstream-host")
        # A resized local terminal resizes the upstream one (window-change, passed on).
        shell.setwinsize(40, 120)

        def resized() -> bool:
            shell.sendline("stty size")
            try:
                shell.expect("40 120", timeout=2)
                return True
            except pexpect.TIMEOUT:
                return False

        h.wait_until(resized, 30, "the new terminal size upstream")
        shell.sendline("exit 7")
        shell.expect(pexpect.EOF)
    finally:
        shell.close()
    assert shell.exitstatus == 7, shell.before


def test_commands_keep_their_output_apart_their_status_and_accepted_environment(scn):
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), {"ssh": {"acceptEnv": ["LANG", "LC_*", "NOT_ACCEPTED"]}}))
    result = scn.client(gw).ssh(
        "echo out; echo err >&2; echo lc=$LC_PROXIED; echo other=$NOT_ACCEPTED; whoami; exit 3",
        opts=["-o", "SetEnv=LC_PROXIED=through NOT_ACCEPTED=dropped"])
    assert result.returncode == 3, result
    # The upstream sshd's AcceptEnv decides, as it would for the client itself.
    assert result.stdout == "out\nlc=through\nother=\nroot\n", result
    assert "err" in result.stderr and "out" not in result.stderr, result
    assert "Accepted publickey for root" in server.log


def test_only_the_configured_algorithms_and_client_version_reach_the_server(scn):
    server = upstream(scn)
    gw = scn.start(proxied(server, ciphers=["aes128-ctr"], kex=["ecdh-sha2-nistp384"], macs=["hmac-sha2-512"],
                           hostKeyAlgos=["ssh-ed25519"], clientVersion="SSH-2.0-sshpodProxy test_1"))
    assert scn.client(gw).ssh("echo hi").stdout == "hi\n"
    log = server.log
    assert "remote software version sshpodProxy" in log, log
    assert "kex: algorithm: ecdh-sha2-nistp384" in log, log
    assert "kex: host key algorithm: ssh-ed25519" in log, log
    assert "kex: client->server cipher: aes128-ctr MAC: hmac-sha2-512" in log, log
    # ContainerSSH's default version string, when none is set.
    gw = scn.start(proxied(server))
    assert scn.client(gw).ssh("echo hi").stdout == "hi\n"
    assert "remote software version ContainerSSH" in server.log


def test_a_process_killed_upstream_ends_with_exit_signal_and_signals_are_passed_on(scn):
    server = upstream(scn)
    gw = scn.start(proxied(server))

    async def scenario():
        async with asyncssh.connect("127.0.0.1", gw.port, username="alice",
                                    client_keys=[str(scn.keys["alice"])], known_hosts=None,
                                    agent_path=None, config=None, preferred_auth="publickey") as conn:
            killed = await conn.run("kill -KILL $$", check=False)
            terminated = await conn.run("kill -TERM $$", check=False)
            exited = await conn.run("exit 143", check=False)
            process = await conn.create_process("echo ready; exec cat")
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.strip() == "ready", line
            process.send_signal("USR1")
            # sshd acts on `signal` requests only for users other than root (it needs its
            # unprivileged child); the request reaching it is what sshpod owes.
            await asyncio.to_thread(h.wait_until, lambda: "req signal" in server.log, 30,
                                    "the signal request at the upstream sshd")
            process.stdin.write_eof()
            ended = await asyncio.wait_for(process.wait(check=False), 60)
            return killed, terminated, exited, ended

    killed, terminated, exited, ended = asyncio.run(scenario())
    assert killed.exit_signal and killed.exit_signal[0] == "KILL", killed
    assert terminated.exit_signal and terminated.exit_signal[0] == "TERM", terminated
    # A status is a status, not a signal.
    assert (exited.exit_status, exited.exit_signal) == (143, None), exited
    assert (ended.exit_status, ended.exit_signal) == (0, None), ended


def test_sftp_and_scp_move_8_mib_intact_both_ways(scn):
    server = upstream(scn)
    gw = scn.start(proxied(server))
    client = scn.client(gw)
    local = scn.tmp / "payload"
    local.write_bytes(os.urandom(8 * 1024 * 1024))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    remote_dir = server.dir / "files"
    remote_dir.mkdir()

    batch = scn.tmp / "batch"
    batch.write_text(f"put {local} {remote_dir}/by-sftp\nget {remote_dir}/by-sftp {scn.tmp}/back-by-sftp\n")
    result = client.run_args(client.sftp_args(opts=["-b", str(batch)]))
    assert result.returncode == 0, result
    result = client.run_args(client.scp_args(str(local), client.remote(f"{remote_dir}/by-scp")))
    assert result.returncode == 0, result
    result = client.run_args(client.scp_args(client.remote(f"{remote_dir}/by-scp"), str(scn.tmp / "back-by-scp")))
    assert result.returncode == 0, result

    for path in (remote_dir / "by-sftp", remote_dir / "by-scp", scn.tmp / "back-by-sftp", scn.tmp / "back-by-scp"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path


def test_local_forwarding_reaches_what_the_upstream_server_reaches(scn):
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), h.FORWARDING))
    # A one-line TCP service on the upstream machine's loopback.
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen()
    scn.finalizers.append(service.close)

    def answer() -> None:
        while True:
            try:
                conn, _ = service.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"answered upstream: " + conn.recv(100))

    threading.Thread(target=answer, daemon=True).start()
    local = h.free_port()
    scn.track(scn.client(gw).popen(opts=["-N", "-o", "ExitOnForwardFailure=yes",
                                         "-L", f"127.0.0.1:{local}:127.0.0.1:{service.getsockname()[1]}"]))

    def ask() -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
                conn.sendall(b"ping")
                return conn.recv(100)
        except OSError:
            return b""

    assert h.wait_until(ask, 60, "an answer through the forwarded port") == b"answered upstream: ping"


def test_an_untrusted_host_key_is_refused_with_a_clear_message(scn):
    server = upstream(scn)
    other = scn.tmp / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    gw = scn.start(proxied(server, allowedHostKeyFingerprints=[fingerprint(other.with_suffix(".pub"))]))
    result = scn.client(gw).ssh("echo should not run")
    assert result.returncode != 0 and "should not run" not in result.stdout, result
    assert "presented a host key this server does not trust" in result.stderr, result
    # The operator learns which key it was.
    gw.wait_for_log(re.escape(server.fingerprint), 10)
    assert "Accepted publickey" not in server.log


def test_a_server_that_is_down_or_refuses_the_key_gives_a_short_true_message(scn):
    server = upstream(scn)
    down = h.free_port()
    gw = scn.start(proxied(server, port=down, timeout="2s"))
    result = scn.client(gw).ssh("true")
    assert result.returncode != 0, result
    assert "the SSH server behind this one is not reachable" in result.stderr, result
    # Short: the user is not shown addresses or library errors.
    assert str(down) not in result.stderr and "os error" not in result.stderr, result

    stranger = scn.tmp / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    gw = scn.start(proxied(server, privateKey=str(stranger)))
    result = scn.client(gw).ssh("true")
    assert result.returncode != 0, result
    assert "did not accept this server's credentials" in result.stderr, result


def test_username_pass_through_logs_in_upstream_as_the_login_s_own_user(scn):
    server = upstream(scn)
    gw = scn.start(proxied(server, usernamePassThrough=True, username=""))
    shutil.copy(scn.tmp / "authorized_keys" / "alice", scn.tmp / "authorized_keys" / "root")
    as_root = scn.client(gw, user="root").ssh("whoami")
    assert as_root.stdout == "root\n", as_root
    # alice has no account upstream: the upstream server is asked for her, and refuses.
    as_alice = scn.client(gw).ssh("whoami")
    assert as_alice.returncode != 0, as_alice
    assert "did not accept this server's credentials" in as_alice.stderr, as_alice
    h.wait_until(lambda: "Invalid user alice" in server.log, 10, "sshd asked for alice")


def test_a_config_server_sends_chosen_users_upstream_and_the_others_to_containers(scn):
    server = upstream(scn)
    webhooks = WebhookServer({
        # bob's answer names the server; carol's only the backend, so the file's section serves.
        "bob": {"config": proxied(server, clientVersion="SSH-2.0-FromTheAnswer")},
        "carol": {"config": {"backend": "sshproxy"}},
        "alice": {"config": {}},
    })
    scn.finalizers.append(webhooks.close)
    # They all log in with alice's key; only the config server's answers tell them apart.
    for user in ("bob", "carol"):
        shutil.copy(scn.tmp / "authorized_keys" / "alice", scn.tmp / "authorized_keys" / user)
    config = h.deep_merge(scn.config({"sshproxy": server.section()}),
                          {"configserver": {"url": webhooks.url + "/config"}})
    gw = scn.start(config_path=scn.write_config(config))
    marker = f"cat {server.marker} 2>/dev/null || echo in-a-container"
    bob = scn.client(gw, user="bob").ssh(marker)
    assert bob.stdout == "upstream-host\n", bob
    assert "remote software version FromTheAnswer" in server.log
    carol = scn.client(gw, user="carol").ssh(marker)
    assert carol.stdout == "upstream-host\n", carol
    assert "remote software version ContainerSSH" in server.log
    alice = scn.client(gw).ssh(marker)
    assert alice.stdout == "in-a-container\n", alice


def test_on_kubernetes_a_config_server_sends_one_user_upstream_and_another_to_a_pod(kube, scn, ks):
    server = upstream(scn)
    webhooks = WebhookServer({"bob": {"config": proxied(server)}, "alice": {"config": {}}})
    scn.finalizers.append(webhooks.close)
    shutil.copy(scn.tmp / "authorized_keys" / "alice", scn.tmp / "authorized_keys" / "bob")
    gw = kube({"configserver": {"url": webhooks.url + "/config"}})
    marker = f"cat {server.marker} 2>/dev/null || echo in-a-pod"
    bob = scn.client(gw, user="bob").ssh(marker)
    assert bob.stdout == "upstream-host\n", bob
    # bob's login made no pod; alice's does.
    assert not pods(ks), pods(ks)
    alice = scn.client(gw).ssh(marker)
    assert alice.stdout == "in-a-pod\n", alice


def test_a_proxied_session_is_recorded_and_its_recording_verifies(scn):
    server = upstream(scn)
    audit_dir = scn.tmp / "audit"
    settings = recording(audit_dir, intercept={"stdout": True})
    gw = scn.start(h.deep_merge(proxied(server), settings))
    assert scn.client(gw).ssh("echo recorded upstream").stdout == "recorded upstream\n"
    [entry] = complete_recordings(audit_dir)
    assert next(entry.glob("channel-*.stdout")).read_bytes() == b"recorded upstream\n"
    kinds = [line["kind"] for line in events(entry)]
    assert "login-accepted" in kinds, kinds
    verify = h.run_sshpod(["--config", str(gw.config_path), "audit", "verify"])
    assert verify.returncode == 0, verify
    assert entry.name in verify.stdout, verify


# Remote and socket forwarding, passed on over the upstream connection ---------------------------

ALL_FORWARDS = {"security": {"forwarding": {
    "forwardingMode": "enable", "reverseForwardingMode": "enable",
    "socketListenMode": "enable", "socketForwardingMode": "enable"}}}


def line_through(family: int, address, line: bytes = b"ping\n") -> bytes:
    """Connects (the upstream machine is this one), sends a line, returns the answer; b"" if
    nothing listens."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(address)
            conn.sendall(line)
            return conn.recv(100)
    except OSError:
        return b""


def test_a_remote_forward_is_made_on_the_upstream_server_and_cancelled_there(scn, local):
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), ALL_FORWARDS))
    service = local()
    client, opts = master(scn, gw)
    added = forward(client, opts, f"0:127.0.0.1:{service.port}")
    assert added.returncode == 0, added
    port = int(added.stdout.strip())
    # The upstream server listens (on this machine's loopback) and its connections reach the
    # client's side through sshpod.
    for line in (b"ping\n", b"again\n"):
        answer = h.wait_until(lambda: line_through(socket.AF_INET, ("127.0.0.1", port), line), 30,
                              "an answer through the upstream server's forward")
        assert answer == b"pong:" + line, answer
    assert re.search(r"tcpip-forward", server.log), "the forward was not asked of the upstream server"
    # Cancelled as it was asked for (ssh finds the port it was given).
    cancelled = forward(client, opts, f"0:127.0.0.1:{service.port}", cancel=True)
    assert cancelled.returncode == 0, cancelled
    h.wait_until(lambda: not h.port_open(port), 30, "the upstream forward closed on cancel")
    assert re.search(r"cancel-tcpip-forward", server.log), "the cancel did not reach the upstream server"


def test_socket_forwards_both_ways_reach_sockets_on_the_upstream_server(scn, local):
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), ALL_FORWARDS))
    service = local()
    client, opts = master(scn, gw)
    # `ssh -R /path:host:port`: the upstream server makes the socket.
    remote_sock = Path(scn.sock_dir) / "upstream-made.sock"
    added = forward(client, opts, f"{remote_sock}:127.0.0.1:{service.port}")
    assert added.returncode == 0, added
    answer = h.wait_until(lambda: line_through(socket.AF_UNIX, str(remote_sock)), 30,
                          "an answer through the upstream server's socket")
    assert answer == b"pong:ping\n", answer
    # `ssh -L local.sock:/path`: a socket on the upstream machine, reached from the client's.
    target = Path(scn.sock_dir) / "upstream-service.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(target))
    listener.listen()
    scn.finalizers.append(listener.close)

    def answer_once() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"socket upstream: " + conn.recv(100))

    threading.Thread(target=answer_once, daemon=True).start()
    local_sock = Path(scn.sock_dir) / "client-side.sock"
    result = client.ssh(opts=[*opts, "-O", "forward", "-L", f"{local_sock}:{target}"])
    assert result.returncode == 0, result
    answer = h.wait_until(lambda: line_through(socket.AF_UNIX, str(local_sock), b"hello"), 30,
                          "an answer from the upstream machine's socket")
    assert answer == b"socket upstream: hello", answer


def test_a_forwarded_agent_reaches_the_upstream_servers_sessions_that_asked(scn):
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), {"security": {"forwarding": {"agentForwardingMode": "enable"}}}))
    sock = Path(scn.sock_dir) / "agent.sock"
    scn.track(subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    h.wait_until(sock.exists, 10, "the test's ssh-agent listens")
    added = subprocess.run(["ssh-add", str(scn.keys["alice"])], env={"SSH_AUTH_SOCK": str(sock)},
                           capture_output=True, timeout=30)
    assert added.returncode == 0, added
    key = fingerprint(scn.keys["alice"].with_suffix(".pub"))
    show = "echo sock=${SSH_AUTH_SOCK:-none}; ssh-add -l"
    # The upstream sshd makes its own socket and sets the variable, as for any client.
    forwarded = scn.client(gw).ssh(show, opts=["-A"], env={"SSH_AUTH_SOCK": str(sock)})
    assert forwarded.returncode == 0, forwarded
    assert key in forwarded.stdout, forwarded
    assert re.search(r"sock=/tmp/ssh-\S+/agent\.\d+", forwarded.stdout), forwarded
    plain = scn.client(gw).ssh(show, opts=["-o", "ForwardAgent=no"], env={"SSH_AUTH_SOCK": str(sock)})
    assert "sock=none" in plain.stdout, plain


X11_ENABLED = {"security": {"forwarding": {"x11ForwardingMode": "enable"}}}


def session_requests(server: Upstream, request: str) -> int:
    """How many channel requests named `request` the upstream sshd has logged."""
    return len(re.findall(rf"server_input_channel_req: channel \d+ request {request} ", server.log))


@pytest.mark.parametrize("mode", ["untrusted", "trusted"])
def test_x11_is_passed_on_and_the_upstream_server_makes_the_display(scn, xserver, mode):
    """An X client run in the upstream session (its perl: the upstream machine is this one)
    completes the X11 setup with the test's Xvfb through sshpod; the upstream sshd made the
    display and wrote the client's cookie with its own xauth, and sshpod made no display (no
    forward asked upstream) and wrote no file (no session of its own there)."""
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), X11_ENABLED))
    command = "echo display=$DISPLAY; echo xauthority=$XAUTHORITY; perl -"
    result = scn.client(gw).ssh(command, opts=trusted(mode == "trusted"), env=xserver, input=X_CLIENT)
    assert result.returncode == 0, result
    assert re.search(r"^display=localhost:1\d\.0$", result.stdout, re.M), result
    assert f"xauthority={server.dir / 'xauthority'}\n" in result.stdout, result
    assert "success vendor=The X.Org Foundation\n" in result.stdout, result
    # The x11 channel came from the upstream X client's own connection to sshd's display.
    gw.wait_for_log(r"X11 connection passed to the client.*originator=\"?127\.0\.0\.1", 10)
    assert session_requests(server, "x11-req") == 1, server.log
    assert session_requests(server, "exec") == 1, "sshpod ran nothing upstream of its own"
    assert "tcpip-forward" not in server.log, "sshpod listened upstream for a display"


def test_only_proxied_sessions_that_asked_get_a_display(scn, xserver):
    """On one connection: the master forwards X11, a session that did not ask has no DISPLAY,
    and a later session that asks still reaches the X server (one listener for them all)."""
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), X11_ENABLED))
    client = scn.client(gw)
    opts = h.control_options(scn.control_path(client))
    master = client.ssh("true", opts=[*opts, *trusted(False)], env=xserver)
    assert master.returncode == 0, master
    plain = client.ssh(SHOW, opts=[*opts, "-o", "ForwardX11=no"], env=xserver)
    assert plain.stdout == "display=none\n", plain
    for _ in range(2):
        again = client.ssh(f"{SHOW}; perl -", opts=[*opts, *trusted(False)], env=xserver, input=X_CLIENT)
        assert re.search(r"^display=localhost:1\d\.0$", again.stdout, re.M), again
        assert "success vendor=The X.Org Foundation\n" in again.stdout, again
    assert session_requests(server, "x11-req") == 3, server.log


def test_a_single_connection_is_asked_of_the_upstream_server(scn, xserver):
    """asyncssh's `x11_single_connection` reaches the upstream sshd: one X client gets through,
    then the upstream display stops listening while the session goes on."""
    server = upstream(scn)
    gw = scn.start(h.deep_merge(proxied(server), X11_ENABLED))

    async def scenario():
        async with asyncssh.connect("127.0.0.1", gw.port, username="alice",
                                    client_keys=[str(scn.keys["alice"])], known_hosts=None,
                                    agent_path=None, config=None, preferred_auth="publickey") as conn:
            return await conn.run(f"perl -; {DISPLAY_CLOSES}", input=X_CLIENT, check=False,
                                  x11_forwarding=True, x11_display=xserver["DISPLAY"],
                                  x11_auth_path=xserver["XAUTHORITY"], x11_single_connection=True)
    result = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert result.exit_status == 0, (result.stdout, result.stderr)
    assert result.stdout == "success vendor=The X.Org Foundation\ndisplay-closed\n", result.stderr


def test_proxied_x11_is_refused_by_the_policy_and_said_when_the_upstream_server_refuses(scn, xserver):
    server = upstream(scn, first=("X11Forwarding no",))
    gw = scn.start(proxied(server))
    refused = scn.client(gw).ssh(SHOW, opts=trusted(True), env=xserver)
    assert refused.stdout == "display=none\n", refused
    assert "X11 forwarding request failed" in refused.stderr, refused
    gw.wait_for_log(r"rule=\"?security\.forwarding\.x11ForwardingMode", 10)
    assert session_requests(server, "x11-req") == 0, "refused by sshpod, not passed on"
    # Allowed here and refused upstream: the session runs, and the user is told.
    gw_on = scn.start(h.deep_merge(proxied(server), X11_ENABLED))
    upstream_no = scn.client(gw_on).ssh(SHOW, opts=trusted(True), env=xserver)
    assert upstream_no.returncode == 0, upstream_no
    assert upstream_no.stdout == "display=none\n", upstream_no
    assert "sshpod: the SSH server behind this one refused X11 forwarding" in upstream_no.stderr, upstream_no
    assert session_requests(server, "x11-req") == 1, server.log

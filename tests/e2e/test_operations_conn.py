"""Connection-level operations: the PROXY protocol from a trusted load balancer (v1 and v2
headers through a relay that prepends them, the client's address in the webhook request and the
log; malformed and missing headers refused; an untrusted source's header not honoured), the idle
and session limits ending PTY sessions after a warning in the terminal, and the drain on SIGTERM
(the notice in a PTY session, a new login refused with the message, a second SIGTERM cutting
the wait short).

Loopback has a whole /8: the relay connects from 127.0.0.2 (trusted) or 127.0.0.3 (not), while
plain clients keep connecting from 127.0.0.1."""

from __future__ import annotations

import io
import ipaddress
import re
import signal
import socket
import struct
import sys
import time

import pexpect
import pytest

import harness as h

sys.path.insert(0, str(h.REPO_ROOT / "tests" / "webhook_server"))
from containerssh_webhooks import WebhookServer  # noqa: E402

PASSWORD = "proxied pass 1"
PROMPT = r"[#$] "
TRUSTED = "127.0.0.2"
UNTRUSTED = "127.0.0.3"
PROXY_ON = {"ssh": {"proxyProtocol": {"enable": True, "trustedNetworks": [f"{TRUSTED}/32"], "headerTimeout": "2s"}}}


# --------------------------------------------------------------------------------------------
# A load balancer: prepends a PROXY header to each connection it relays.


def v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    family = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def v2_header(source: tuple[str, int], destination: tuple[str, int], tlvs: bytes = b"") -> bytes:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def relays():
    made: list[h.TcpProxy] = []

    def make(target_port: int, header: bytes, source_ip: str = TRUSTED) -> h.TcpProxy:
        relay = h.TcpProxy(target_port, header, source_ip)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.close()


@pytest.fixture
def hooks():
    servers: list[WebhookServer] = []

    def make(users=None) -> WebhookServer:
        server = WebhookServer(users)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def password_webhook(url: str) -> dict:
    return {"auth": {"password": {"method": "webhook", "webhook": {"url": url}}, "publicKey": {"method": ""}}}


def connect_from(source_ip: str, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source_ip, 0))
    sock.settimeout(30)
    return sock


# --------------------------------------------------------------------------------------------
# PROXY protocol


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_proxied_login_is_known_by_the_headers_client_address(scn, hooks, relays, version):
    server = hooks({"alice": {"password": PASSWORD}})
    gw = scn.start(h.deep_merge(PROXY_ON, password_webhook(server.url)))
    if version == "v1":
        client_addr, header = "203.0.113.7:40001", v1_header(("203.0.113.7", 40001), ("192.0.2.1", 22))
        connection = "203.0.113.7 40001 192.0.2.1 22"
    else:
        # With a TLV after the addresses, as AWS NLB sends its endpoint id.
        client_addr = "[2001:db8::7]:40002"
        header = v2_header(("2001:db8::7", 40002), ("2001:db8::1", 22), tlvs=b"\xea\x00\x03vpc")
        connection = "2001:db8::7 40002 2001:db8::1 22"
    relay = relays(gw.port, header)
    result = h.Client(relay.port, key=None, password=PASSWORD).ssh("echo through-the-balancer; echo $SSH_CONNECTION")
    assert (result.returncode, result.stdout) == (0, f"through-the-balancer\n{connection}\n"), result
    (request,) = server.seen("/password")
    assert request["remoteAddress"] == client_addr, request
    gw.wait_for_log(re.compile(rf"peer={re.escape(client_addr)} via={TRUSTED}:\d+"), 10,
                    "the connection's span with the client's and the proxy's addresses")
    # A client from anywhere else needs no header.
    direct = h.Client(gw.port, key=None, password=PASSWORD).ssh("echo direct $SSH_CLIENT")
    assert direct.returncode == 0 and re.fullmatch(rf"direct 127\.0\.0\.1 \d+ {gw.port}\n", direct.stdout), direct
    assert server.seen("/password")[-1]["remoteAddress"].startswith("127.0.0.1:")


@pytest.mark.parametrize("start", [
    b"SSH-2.0-OpenSSH_9.2p1\r\n",                                  # no header at all
    b"PROXY TCP4 203.0.113.7 nonsense 1 2\r\n",                    # v1 with a bad address
    b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n",                      # longer than v1 allows
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff" + b"\x00" * 64,      # v2 announcing 64 KiB
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12,      # v2 of version 3
], ids=["missing", "v1-garbage", "v1-oversize", "v2-oversize", "v2-version"])
def test_a_trusted_source_without_a_valid_header_is_refused(scn, start):
    gw = scn.start(PROXY_ON)
    with connect_from(TRUSTED, gw.port) as sock:
        sock.sendall(start)
        received = h.read_until_eof(sock, 10)
    assert b"SSH-" not in received, f"the server spoke SSH to a connection without a valid header: {received!r}"
    gw.wait_for_log("no valid PROXY protocol header from a trusted proxy", 10)
    # The server still serves.
    result = scn.client(gw).ssh("echo still-serving")
    assert (result.returncode, result.stdout) == (0, "still-serving\n"), result


def test_a_trusted_source_that_sends_nothing_is_dropped_at_the_header_deadline(scn):
    gw = scn.start(PROXY_ON)
    with connect_from(TRUSTED, gw.port) as sock:
        assert h.read_until_eof(sock, 20) == b""
    gw.wait_for_log(r"no PROXY protocol header within 2s", 10)


def test_an_untrusted_sources_header_is_not_honoured(scn, relays):
    gw = scn.start(PROXY_ON)
    relay = relays(gw.port, v1_header(("203.0.113.9", 40003), ("192.0.2.1", 22)), source_ip=UNTRUSTED)
    result = scn.client(relay.port).ssh("echo should-not-run")
    assert result.returncode == 255 and "should-not-run" not in result.stdout, result
    assert "203.0.113.9" not in gw.log, "an untrusted header's address was used"


# --------------------------------------------------------------------------------------------
# Idle and session limits


def spawn_pty(client: h.Client, *remote: str, log_level: str = "INFO") -> pexpect.spawn:
    """An interactive `ssh -tt` that shows the disconnect message (LogLevel INFO: the suite's
    common options say ERROR, and ssh takes the first value it is given)."""
    args = [f"LogLevel={log_level}" if a == "LogLevel=ERROR" else a for a in client.ssh_args(*remote, opts=["-tt"])]
    child = pexpect.spawn(args[0], args[1:], env=client._env({"TERM": "xterm"}), encoding="utf-8",
                          codec_errors="replace", timeout=60)
    child.logfile_read = io.StringIO()
    return child


def transcript(child: pexpect.spawn) -> str:
    return f"terminal transcript:\n{child.logfile_read.getvalue()[-3000:]}"


def test_an_idle_terminal_is_warned_then_disconnected(scn):
    # Short limits keep the test short: the warning comes `limitWarning` before the end.
    gw = scn.start({"ssh": {"idleTimeout": "4s", "limitWarning": "2s"}})
    child = spawn_pty(scn.client(gw))
    try:
        child.expect(PROMPT)
        child.expect(r"sshpod: idle for 2 s; this session ends in 2 s\r\n", timeout=30)
        child.expect(r"sshpod: idle for 4 s", timeout=30)  # the disconnect message ssh prints
        child.expect(pexpect.EOF, timeout=30)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    child.close()
    assert child.exitstatus == 255, transcript(child)
    gw.wait_for_log(r"ended by a limit.*rule=\"?ssh\.idleTimeout|rule=\"?ssh\.idleTimeout.*ended by a limit", 10)


def test_typing_keeps_a_terminal_alive_and_the_maximum_duration_ends_it(scn):
    gw = scn.start({"ssh": {"idleTimeout": "3s", "maxSessionDuration": "8s", "limitWarning": "1s"}})
    child = spawn_pty(scn.client(gw))
    try:
        child.expect(PROMPT)
        started = time.monotonic()
        # Input every second: never idle for 3 s.
        while not child.logfile_read.getvalue().count("maximum duration"):
            child.sendline("true")
            try:
                child.expect("maximum duration", timeout=1)
            except pexpect.TIMEOUT:
                pass
            assert time.monotonic() - started < 60, transcript(child)
        child.expect(pexpect.EOF, timeout=30)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    child.close()
    text = child.logfile_read.getvalue()
    assert "sshpod: this session reaches its maximum duration of 8 s; it ends in 1 s" in text, transcript(child)
    assert "idle for" not in text, transcript(child)
    assert "the session reached its maximum duration of 8 s" in text, transcript(child)


def test_a_config_server_sets_the_idle_limit_for_one_user(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD, "config": {"ssh": {"idleTimeout": "3s", "limitWarning": "1s"}}}})
    config = h.deep_merge(password_webhook(server.url), {"configserver": {"url": f"{server.url}/config"}})
    gw = scn.start(config)
    child = spawn_pty(h.Client(gw.port, key=None, password=PASSWORD))
    try:
        child.expect(PROMPT)
        child.expect(r"sshpod: idle for 2 s; this session ends in 1 s", timeout=30)
        child.expect(pexpect.EOF, timeout=30)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None


def test_a_quiet_session_channel_is_warned_then_closed_by_its_channel_timeout(scn):
    gw = scn.start({"ssh": {"channelTimeout": "session=3s direct-tcpip=1h", "limitWarning": "1s"}})
    child = spawn_pty(scn.client(gw))
    try:
        child.expect(PROMPT)
        child.expect(r"sshpod: no traffic for 2 s; this session closes in 1 s\r\n", timeout=30)
        child.expect(pexpect.EOF, timeout=30)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    gw.wait_for_log(r"ssh\.channelTimeout", 10)


def test_a_connection_without_channels_is_closed_after_the_unused_timeout(scn):
    gw = scn.start({"ssh": {"unusedConnectionTimeout": "2s"}})
    client = scn.client(gw)
    # `ssh -N`: logged in, no channel ever.
    proc = scn.track(client.popen(opts=["-N"]))
    h.wait_containers(scn.run_id, 1)
    try:
        proc.wait(30)
    except Exception:
        raise AssertionError("an unused connection stayed open") from None
    gw.wait_for_log(r"ssh\.unusedConnectionTimeout", 10)


# --------------------------------------------------------------------------------------------
# Drain on SIGTERM


def test_sigterm_tells_terminals_and_refuses_new_logins_then_shuts_down(scn):
    gw = scn.start({"ssh": {"drainTimeout": "6s", "shutdownTimeout": "5s"}})
    child = spawn_pty(scn.client(gw))
    try:
        child.expect(PROMPT)
        gw.signal(signal.SIGTERM)
        child.expect(r"sshpod: this server is restarting; your session ends in 6 s\r\n", timeout=30)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    args = [a if a != "LogLevel=ERROR" else "LogLevel=INFO" for a in scn.client(gw).ssh_args("echo refused")]
    refused = scn.client(gw).run_args(args, timeout=30)
    assert refused.returncode == 255, refused
    assert "sshpod: this server is restarting" in refused.stderr, refused
    assert gw.wait_exit(60) == 0, gw.log
    try:
        child.expect(pexpect.EOF, timeout=30)
    except pexpect.TIMEOUT:
        raise AssertionError(f"the session outlived the server\n{transcript(child)}") from None
    assert h.containers(scn.run_id) == [], "sshpod exited but left its containers behind"


def test_a_second_sigterm_ends_the_drain_at_once(scn):
    gw = scn.start({"ssh": {"drainTimeout": "120s"}})
    gw.signal(signal.SIGTERM)
    gw.wait_for_log("draining", 10)
    gw.signal(signal.SIGTERM)
    assert gw.wait_exit(60) == 0, gw.log
    assert "SIGTERM received again" in gw.log

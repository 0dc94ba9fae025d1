"""Connection limits that protect the server from idle or flooding clients: the login grace time
and the cap on unauthenticated connections (maxStartups)."""

from __future__ import annotations

import socket

import harness as h


def test_idle_connection_is_closed_after_login_grace_time(scn):
    gw = scn.start({"ssh": {"loginGraceTime": "2s"}})
    with h.connect_raw(gw.port) as sock:
        received = h.read_until_eof(sock, 30)
    assert received == b"" or received.startswith(b"SSH-2.0-"), received


def test_max_startups_refuses_extra_unauthenticated_connections(scn):
    gw = scn.start({"ssh": {"maxStartups": 2}})
    idle = [h.connect_raw(gw.port) for _ in range(2)]
    try:
        for sock in idle:
            assert h.read_banner(sock).startswith(b"SSH-2.0-")
        with h.connect_raw(gw.port) as third:
            received = h.read_until_eof(third, 30)
        assert received == b"" or received.startswith(b"SSH-2.0-"), received
    finally:
        for sock in idle:
            sock.close()

    client = scn.client(gw)
    result = h.wait_until(lambda: (r := client.ssh("echo ok")).returncode == 0 and r, 30,
                          "a login once the idle connections are closed")
    assert result.stdout == "ok\n", result


def connect_from(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(30)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_idle_connections_from_one_address_lock_out_nobody_else(scn):
    """150 silent connections from one address (the default cap is 100 unauthenticated in all):
    only 20 are kept (ssh.perSourceMaxStartups), the rest are closed at once, and a user from
    another address logs in meanwhile."""
    gw = scn.start()
    flood = [connect_from("127.0.0.2", gw.port) for _ in range(150)]
    try:
        def kept() -> int:
            alive = 0
            for sock in flood:
                sock.setblocking(False)
                try:
                    alive += sock.recv(1, socket.MSG_PEEK) != b""
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
            return alive

        h.wait_until(lambda: kept() == 20, 30, "all but 20 of the flood closed")
        result = scn.client(gw).ssh("echo ok", timeout=30)
        assert (result.returncode, result.stdout) == (0, "ok\n"), result
        assert "ssh.perSourceMaxStartups" in gw.log
    finally:
        for sock in flood:
            sock.close()


def test_a_silent_connection_is_closed_after_the_handshake_timeout(scn):
    """A connection that never completes the key exchange is closed after ssh.handshakeTimeout,
    long before loginGraceTime."""
    gw = scn.start({"ssh": {"handshakeTimeout": "1s", "loginGraceTime": "120s"}})
    with h.connect_raw(gw.port) as sock:
        received = h.read_until_eof(sock, 30)
    assert received == b"" or received.startswith(b"SSH-2.0-"), received
    # Closed by the handshake deadline (the login grace time is two minutes away).
    gw.wait_for_log("ssh.handshakeTimeout", 10)
    # A real client is well within it.
    result = scn.client(gw).ssh("echo ok")
    assert (result.returncode, result.stdout) == (0, "ok\n"), result

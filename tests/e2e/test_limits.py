"""Connection limits that protect the server from idle or flooding clients: the login grace time
and the cap on unauthenticated connections (maxStartups)."""

from __future__ import annotations

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

"""X11 forwarding (`ssh -X`, `ssh -Y`) on Docker and kube-sim with OpenSSH, asyncssh and paramiko,
against
the test's own X server (Xvfb with its own cookie): a small X client inside the container
completes the X11 connection setup through the tunnel with the cookie sshpod wrote into the
user's Xauthority file, a wrong cookie is refused, only sessions that asked get `DISPLAY`, a
session's display stops listening when it ends (or after one connection, when the client asks
for that), a hostile Xauthority file is left alone, and the security mode and
`no-X11-forwarding` refuse it."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import secrets
import select
import struct
import subprocess
import time

import asyncssh
import paramiko
import pytest

import harness as h
from test_kubernetes import kube, ks  # noqa: F401 - fixtures
from test_remote_forwarding import start  # noqa: F401 - a fixture: each backend

ENABLED = {"security": {"forwarding": {"x11ForwardingMode": "enable"}}}

# The X11 connection setup (X Window System Protocol, chapter 8), written for the guest image's
# perl: the cookie for $DISPLAY comes from the user's Xauthority file (the FamilyLocal entry
# for this host's name and the display's number), and the server's answer is printed:
# "success vendor=..." or "failed: <reason>" or "closed". `perl - wrong` flips the cookie.
X_CLIENT = r"""
use strict; use warnings; use IO::Socket::INET;
my $wrong = (@ARGV && $ARGV[0] eq 'wrong');
my ($n) = ($ENV{DISPLAY} // '') =~ /^localhost:(\d+)\.\d+$/ or die "bad DISPLAY\n";
my $file = $ENV{XAUTHORITY} || "$ENV{HOME}/.Xauthority";
open(my $hf, '<', '/proc/sys/kernel/hostname') or die "hostname: $!\n";
my $host = <$hf>; chomp $host;
open(my $fh, '<:raw', $file) or die "no $file: $!\n";
my $x = do { local $/; <$fh> };
my ($name, $data);
while (length($x) >= 2) {
    my $family = unpack('n', substr($x, 0, 2, ''));
    my @f;
    for (1 .. 4) { my $len = unpack('n', substr($x, 0, 2, '')); push @f, substr($x, 0, $len, ''); }
    if ($family == 256 && $f[0] eq $host && $f[1] eq $n) { ($name, $data) = @f[2, 3]; last; }
}
defined $name or die "no cookie for display $n in $file\n";
$data = ~$data if $wrong;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 6000 + $n) or die "connect: $!\n";
my $pad = sub { "\0" x ((4 - length($_[0]) % 4) % 4) };
syswrite($s, pack('A1 x v v v v x2', 'l', 11, 0, length($name), length($data))
    . $name . $pad->($name) . $data . $pad->($data));
sub readn {
    my ($want) = @_; my $buf = '';
    while (length($buf) < $want) {
        my $got = sysread($s, $buf, $want - length($buf), length($buf));
        last unless $got;
    }
    return $buf;
}
my $head = readn(8);
if (length($head) < 8) { print "closed\n"; exit 0; }
my ($status, $reason_len, $major, $minor, $words) = unpack('C C v v v', $head);
my $more = readn(4 * $words);
if ($status == 1) {
    my $vendor_len = unpack('v', substr($more, 16, 2));
    print "success vendor=", substr($more, 32, $vendor_len), "\n";
} else {
    print "failed: ", substr($more, 0, $reason_len), "\n";
}
"""

SHOW = "echo display=${DISPLAY:-none}"


@pytest.fixture
def xserver(scn):
    """Xvfb on a free display of the test machine, accepting only its own cookie; the client
    environment (DISPLAY, XAUTHORITY) that reaches it. `-noreset`: the untrusted cookie `ssh -X`
    has the server generate would be forgotten when its generating client leaves."""
    cookie = secrets.token_hex(16)
    server_auth = scn.tmp / "xvfb.auth"
    subprocess.run(["xauth", "-f", str(server_auth), "add", ":0", ".", cookie], check=True,
                   capture_output=True, timeout=30)
    read_end, write_end = os.pipe()
    log = open(scn.tmp / "xvfb.log", "wb")
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-auth", str(server_auth),
                             "-nolisten", "tcp", "-noreset", "-screen", "0", "640x480x24"],
                            pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    os.close(write_end)

    def stop() -> None:
        proc.terminate()
        proc.wait(10)
        log.close()
    scn.finalizers.append(stop)

    number = b""
    deadline = time.monotonic() + 30
    while not number.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(left, 0))
        chunk = os.read(read_end, 16) if ready else b""
        if not chunk:
            raise AssertionError(f"Xvfb did not report its display: {(scn.tmp / 'xvfb.log').read_text()}")
        number += chunk
    os.close(read_end)
    display = f":{int(number)}"
    client_auth = scn.tmp / "client.auth"
    subprocess.run(["xauth", "-f", str(client_auth), "add", display, ".", cookie], check=True,
                   capture_output=True, timeout=30)
    return {"DISPLAY": display, "XAUTHORITY": str(client_auth)}


def trusted(yes: bool) -> list[str]:
    return ["-X", "-o", f"ForwardX11Trusted={'yes' if yes else 'no'}"]


@pytest.mark.parametrize("mode", ["untrusted", "trusted"])
def test_an_x_client_inside_reaches_the_clients_x_server(start, scn, xserver, mode):
    gw = start(ENABLED)
    command = ("echo display=$DISPLAY; stat -c 'xauthority=%a %U' \"$HOME/.Xauthority\"; "
               "echo user=$(id -un); perl -")
    result = scn.client(gw).ssh(command, opts=trusted(mode == "trusted"), env=xserver, input=X_CLIENT)
    assert result.returncode == 0, result
    assert re.search(r"^display=localhost:1\d\.0$", result.stdout, re.M), result
    assert "success vendor=The X.Org Foundation\n" in result.stdout, result
    user = re.search(r"^user=(\S+)$", result.stdout, re.M)
    assert user, result
    assert f"xauthority=600 {user.group(1)}\n" in result.stdout, "the user's own file, mode 0600"
    gw.wait_for_log(r"X11 connection passed to the client", 10)


def test_the_cookie_goes_to_the_users_own_xauthority(scn, xserver):
    """With `identity`, the login's own user and hostname; `XAUTHORITY` (sent by the client)
    names the file, and an existing file keeps its other entries."""
    gw = scn.start(h.deep_merge(ENABLED, {
        "identity": {"enable": True, "hostname": "%u-x11"},
        "ssh": {"acceptEnv": ["XAUTHORITY"]},
    }))
    client = scn.client(gw)
    opts = h.control_options(scn.control_path(client))
    set_file = ["-o", "SetEnv=XAUTHORITY=/tmp/alice.xauth"]
    # The master's session (which forwards X11, so the sessions after it can) replaces the
    # file with an entry of the user's own, for another display.
    keep = client.ssh("printf '\\001\\000\\000\\001h\\000\\0013\\000\\001n\\000\\001d' "
                      ">/tmp/alice.xauth", opts=[*opts, *trusted(True), *set_file], env=xserver)
    assert keep.returncode == 0, keep
    command = ("echo user=$(id -un) host=$(hostname); stat -c 'xauthority=%a %U' \"$XAUTHORITY\"; "
               "test -e \"$HOME/.Xauthority\" || echo no-home-file; "
               "tail -c 9 \"$XAUTHORITY\" | od -An -c | tr -d ' \n'; echo; perl -")
    result = client.ssh(command, opts=[*opts, *trusted(True), *set_file], env=xserver, input=X_CLIENT)
    assert result.returncode == 0, result
    assert "user=alice host=alice-x11\n" in result.stdout, result
    assert "xauthority=600 alice\n" in result.stdout, result
    assert "no-home-file\n" in result.stdout, result
    assert "\\00013\\0001n\\0001d\n" in result.stdout, "the other entry is kept, after the new one"
    assert "success vendor=The X.Org Foundation\n" in result.stdout, result


def test_an_oversized_xauthority_is_left_alone_and_the_session_runs(scn, xserver):
    gw = scn.start(h.deep_merge(ENABLED, {"ssh": {"acceptEnv": ["XAUTHORITY"]}}))
    client = scn.client(gw)
    opts = [*h.control_options(scn.control_path(client)), *trusted(True),
            "-o", "SetEnv=XAUTHORITY=/tmp/big.xauth"]
    made = client.ssh("head -c 70000 /dev/zero >/tmp/big.xauth", opts=opts, env=xserver)
    assert made.returncode == 0, made
    show = "echo display=${DISPLAY:-none}; wc -c </tmp/big.xauth; tr -d '\\0' </tmp/big.xauth | wc -c"
    result = client.ssh(show, opts=opts, env=xserver)
    assert result.returncode == 0, result
    assert re.fullmatch(r"display=localhost:\d+\.0\n70000\n0\n", result.stdout), result
    gw.wait_for_log(r"could not write the X11 cookie.*larger than 64 KiB", 10)


def test_a_wrong_cookie_is_refused(scn, xserver):
    gw = scn.start(ENABLED)
    result = scn.client(gw).ssh("perl - wrong", opts=trusted(True), env=xserver, input=X_CLIENT)
    assert result.returncode == 0, result
    assert "success" not in result.stdout, result
    assert re.search(r"^(closed|failed: .*)$", result.stdout, re.M), result


def test_only_sessions_that_asked_get_a_display_which_ends_with_them(start, scn, xserver):
    gw = start(ENABLED)
    client = scn.client(gw)
    opts = h.control_options(scn.control_path(client))
    # The master forwards X11 for the sessions whose own client asks for it.
    master = client.ssh("true", opts=[*opts, *trusted(True)], env=xserver)
    assert master.returncode == 0, master
    plain = client.ssh(SHOW, opts=[*opts, "-o", "ForwardX11=no"], env=xserver)
    assert plain.stdout == "display=none\n", plain

    # A session that keeps its display while a second one asks: each has its own.
    first = client.popen(f"{SHOW}; cat", opts=[*opts, *trusted(True)], env=xserver,
                         stdin=subprocess.PIPE)
    assert first.stdout is not None and first.stdin is not None
    line = first.stdout.readline().decode()
    held = re.fullmatch(r"display=localhost:(\d+)\.0\n", line)
    assert held, line
    second = client.ssh(f"{SHOW}; perl -", opts=[*opts, *trusted(True)], env=xserver, input=X_CLIENT)
    other = re.search(r"^display=localhost:(\d+)\.0$", second.stdout, re.M)
    assert other and other.group(1) != held.group(1), second
    assert "success vendor=" in second.stdout, second
    first.stdin.close()
    assert first.wait(30) == 0

    # Both sessions ended: nothing listens on their displays' ports inside the container.
    ports = [6000 + int(held.group(1)), 6000 + int(other.group(1))]
    pattern = "|".join(f":{port:04X} 00000000:0000 0A" for port in ports)

    def displays_closed() -> bool:
        out = client.ssh(f"grep -cE '{pattern}' /proc/net/tcp || true", opts=opts).stdout
        return out.strip() == "0"
    h.wait_until(displays_closed, 20, "the ended sessions' displays stop listening")
    gw.wait_for_log(r"remote forward stopped listening", 10)


# Inside the container: waits (10 s at most) until the session's display no longer listens.
DISPLAY_CLOSES = ("d=${DISPLAY#localhost:}; hex=$(printf '%04X' $((6000 + ${d%.*}))); i=0; "
                  "while grep -q \":$hex 00000000:0000 0A\" /proc/net/tcp; do i=$((i + 1)); "
                  "[ $i -lt 200 ] || { echo still-listening; exit 1; }; sleep 0.05; done; echo display-closed")


def test_asyncssh_with_a_single_connection(start, scn, xserver):
    """asyncssh's own X11 client side (its cookie swap, `x11_single_connection`): one X client
    gets through, and then the display stops listening while the session goes on."""
    gw = start(ENABLED)

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


def padded(n: int) -> int:
    """X11's lengths on the wire: rounded up to a multiple of 4."""
    return n + (4 - n % 4) % 4


def recv_exactly(channel: paramiko.Channel, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = channel.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"the x11 channel ended after {len(data)} of {n} bytes")
        data += chunk
    return data


def test_paramiko_sees_its_own_cookie_and_the_originator_and_bad_requests_are_refused(start, scn):
    """paramiko plays the X server: the X client's setup arrives on an `x11` channel from
    127.0.0.1 with exactly the cookie the client sent, and its answer gets back; a cookie
    that is not hex is refused with its reason in the log."""
    gw = start(ENABLED)
    transport = paramiko.Transport(("127.0.0.1", gw.port))
    try:
        transport.connect(username="alice",
                          pkey=paramiko.Ed25519Key.from_private_key_file(str(scn.keys["alice"])))
        arrived: queue.Queue = queue.Queue()
        session = transport.open_session()
        cookie = secrets.token_hex(16)
        session.request_x11(auth_protocol="MIT-MAGIC-COOKIE-1", auth_cookie=cookie,
                            handler=lambda channel, origin: arrived.put((channel, origin)))
        session.exec_command("perl -")
        session.sendall(X_CLIENT.encode())
        session.shutdown_write()
        channel, origin = arrived.get(timeout=60)
        channel.settimeout(30)
        order, _, major, _, name_len, data_len = struct.unpack("<cBHHHH2x", recv_exactly(channel, 12))
        assert (order, major) == (b"l", 11)
        name = recv_exactly(channel, padded(name_len))[:name_len]
        data = recv_exactly(channel, padded(data_len))[:data_len]
        assert (name, data.hex()) == (b"MIT-MAGIC-COOKIE-1", cookie)
        assert origin[0] == "127.0.0.1" and origin[1] > 0, origin
        reason = b"paramiko says no"
        channel.sendall(struct.pack("<BBHHH", 0, len(reason), 11, 0, padded(len(reason)) // 4)
                        + reason.ljust(padded(len(reason)), b"\0"))
        channel.close()
        output = session.makefile().read()
        assert session.recv_exit_status() == 0
        assert output == b"failed: paramiko says no\n", output

        bad = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            bad.request_x11(auth_protocol="MIT-MAGIC-COOKIE-1", auth_cookie="not-hex!")
    finally:
        transport.close()
    gw.wait_for_log(r"rule=\"?x11-req.*not hex|not hex.*rule=\"?x11-req", 10)


def test_x11_is_refused_by_the_policy_and_by_the_key(scn, xserver):
    gw = scn.start()
    refused = scn.client(gw).ssh(SHOW, opts=trusted(True), env=xserver)
    assert refused.stdout == "display=none\n", refused
    gw.wait_for_log(r"rule=\"?security\.forwarding\.x11ForwardingMode", 10)

    pub = scn.keys["alice"].with_suffix(".pub").read_text().strip()
    for options in ["no-X11-forwarding", "restrict,pty"]:
        (scn.tmp / "authorized_keys" / "alice").write_text(f"{options} {pub}\n")
        gw_key = scn.start(ENABLED)
        refused = scn.client(gw_key).ssh(SHOW, opts=trusted(True), env=xserver)
        assert refused.stdout == "display=none\n", (options, refused)
        gw_key.wait_for_log(r"rule=\"?no-X11-forwarding", 10)

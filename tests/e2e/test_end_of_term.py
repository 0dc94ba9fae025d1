"""The end of term, on Docker and on the Kubernetes backend (kube-sim): a live session ends when the certificate it logged in with expires
(`auth.publicKey.disconnectExpiredCert`), with a warning in its terminal first and the reason in
the disconnect message; and when the revocation list starts revoking its certificate (by serial, after a
SIGHUP) or its plain key (noticed on disk, `revokedKeysCheckInterval`), while other users'
sessions go on.

Certificates and KRLs are made by the real `ssh-keygen`; the clients are real OpenSSH `ssh -tt`
sessions driven through a terminal."""

from __future__ import annotations

import math
import signal
import time

import pexpect
import pytest

import harness as h
from test_certificates import Pki, cert_config, keygen
from test_kubernetes import kube_config, ks, wait_no_pods  # noqa: F401 (ks is a fixture)
from test_operations_conn import PROMPT, spawn_pty, transcript


@pytest.fixture(params=["docker", "kubernetes"])
def start(request, scn):
    """Starts gateways on the test's backend; afterwards nothing of theirs may be left."""
    if request.param == "docker":
        return scn.start
    sim = request.getfixturevalue("ks")
    scn.leak_checks.append(lambda: wait_no_pods(sim))
    return lambda overrides=None, **kw: scn.start(h.deep_merge(kube_config(sim), overrides or {}), **kw)


def expect(child: pexpect.spawn, pattern: str | type, timeout: float = 30) -> None:
    try:
        child.expect(pattern, timeout=timeout)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None


def still_serves(child: pexpect.spawn, word: str) -> None:
    """The terminal session runs commands (echoed back as typed, then as output)."""
    child.sendline(f"echo {word}-$((6*7))")
    expect(child, f"{word}-42")


def test_a_terminal_session_is_warned_and_ends_when_its_certificate_expires(scn, start):
    pki = Pki(scn.tmp / "pki")
    gw = start(cert_config(pki))
    signed = time.time()
    # Valid for 10 s: the warning comes half way (`ssh.limitWarning`, at most half of what the
    # certificate had left at the login), so the test stays short.
    key = pki.certified("student", validity="-1m:+10s")
    child = spawn_pty(scn.client(gw, key=key))
    expect(child, PROMPT)
    still_serves(child, "before-the-end")
    expect(child, r"sshpod: your certificate expires in \d+ s; this session ends then\r\n")
    warned = time.time()
    # The disconnect message, which ssh prints at its default LogLevel (INFO).
    expect(child, r"Received disconnect from .*: sshpod: your certificate has expired\r\n")
    expect(child, pexpect.EOF)
    ended = time.time()
    child.close()
    assert child.exitstatus == 255, transcript(child)
    # ssh-keygen counts from the second it signs: `valid before` is at least floor(signed) + 10.
    valid_before = math.floor(signed) + 10
    assert warned < valid_before, f"warned at {warned - signed:.1f} s, after the expiry"
    assert ended >= valid_before - 0.2, f"ended {valid_before - ended:.1f} s before the expiry"
    line = gw.wait_for_log(r".*SSHPOD_CERTIFICATE_EXPIRED.*", 10).group(0)
    assert "auth.publicKey.disconnectExpiredCert" in line, line


def test_with_disconnect_expired_cert_off_a_session_outlives_its_certificate(scn):
    pki = Pki(scn.tmp / "pki")
    gw = scn.start(cert_config(pki, disconnectExpiredCert=False))
    signed = time.time()
    key = pki.certified("student", validity="-1m:+5s")
    child = spawn_pty(scn.client(gw, key=key))
    expect(child, PROMPT)
    # What is awaited is the wall clock itself: past the certificate's `valid before`.
    h.wait_until(lambda: time.time() >= math.floor(signed) + 6, 30, "the certificate to expire")
    still_serves(child, "after-the-end")
    assert "certificate" not in child.logfile_read.getvalue(), transcript(child)
    child.sendline("exit")
    expect(child, pexpect.EOF)
    assert "SSHPOD_CERTIFICATE_EXPIRED" not in gw.log


def test_a_revoked_certificate_serial_ends_its_session_on_sighup_and_no_other(scn, start):
    pki = Pki(scn.tmp / "pki")
    alice_key = pki.certified("alice_cert", principals="alice", serial=42)
    bob_key = pki.certified("bob_cert", principals="bob", serial=43)
    krl = scn.tmp / "revoked.krl"
    keygen("-k", "-f", str(krl), cwd=pki.dir)  # an empty KRL
    # No look at the file on its own: only the SIGHUP can end the session.
    gw = start(cert_config(pki, revokedKeys=str(krl), revokedKeysCheckInterval="0s"))
    alice = spawn_pty(scn.client(gw, key=alice_key))
    bob = spawn_pty(scn.client(gw, key=bob_key, user="bob"))
    expect(alice, PROMPT)
    expect(bob, PROMPT)

    (pki.dir / "spec").write_text("serial: 42\n")
    keygen("-k", "-u", "-s", "user_ca.pub", "-f", str(krl), "spec", cwd=pki.dir)
    still_serves(alice, "until-the-reload")
    gw.signal(signal.SIGHUP)
    expect(alice, r"Received disconnect from .*: sshpod: your certificate has been revoked\r\n")
    expect(alice, pexpect.EOF)
    alice.close()
    assert alice.exitstatus == 255, transcript(alice)
    line = gw.wait_for_log(r".*SSHPOD_KEY_REVOKED.*", 10).group(0)
    assert 'user="alice"' in line and "auth.publicKey.revokedKeys" in line, line

    still_serves(bob, "bob-goes-on")
    assert "revoked" not in bob.logfile_read.getvalue(), transcript(bob)
    bob.sendline("exit")
    expect(bob, pexpect.EOF)


def test_a_plain_key_added_to_the_revoked_keys_file_ends_its_session_without_a_signal(scn):
    bob = Pki(scn.tmp / "pki").key("bob")
    (scn.tmp / "authorized_keys" / "bob").write_text(bob.with_suffix(".pub").read_text())
    revoked = scn.tmp / "revoked_keys"
    revoked.write_text("# revoked keys, one per line\n")
    gw = scn.start({"auth": {"publicKey": {"revokedKeys": str(revoked), "revokedKeysCheckInterval": "1s"}}})
    alice_session = spawn_pty(scn.client(gw))
    bob_session = spawn_pty(scn.client(gw, key=bob, user="bob"))
    expect(alice_session, PROMPT)
    expect(bob_session, PROMPT)

    with revoked.open("a") as listing:
        listing.write(scn.keys["alice"].with_suffix(".pub").read_text())
    expect(alice_session, r"Received disconnect from .*: sshpod: your key has been revoked\r\n")
    expect(alice_session, pexpect.EOF)
    alice_session.close()
    assert alice_session.exitstatus == 255, transcript(alice_session)
    gw.wait_for_log(r".*SSHPOD_KEY_REVOKED.*", 10)
    # A new login with the key is refused too, bob's session goes on.
    refused = scn.client(gw).ssh("true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
    still_serves(bob_session, "bob-goes-on")
    bob_session.sendline("exit")
    expect(bob_session, pexpect.EOF)

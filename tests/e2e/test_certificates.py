"""SSH certificates and key restrictions, built in: user certificates from trusted CAs
(`auth.publicKey.trustedUserCAKeys`, `authorizedPrincipalsFile`), revoked keys (KRL and key
lists), host certificates (`ssh.hostCertificates`), and the restrictions of certificates and
authorized_keys lines (forced command, pty, forwarding, source address).

Certificates, KRLs and host certificates are made by the real `ssh-keygen`; the client is the
real OpenSSH `ssh`. Refused logins start no container (the scenario checks that)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import harness as h

# ------------------------------------------------------------------------------------------
# Helpers


def keygen(*args: str, cwd: Path) -> None:
    result = subprocess.run(["ssh-keygen", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"ssh-keygen {' '.join(args)}: {result.stderr}"


class Pki:
    """A user CA, an untrusted CA, and per-test user keys with certificates."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(exist_ok=True)
        for name in ("user_ca", "other_ca"):
            keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name, cwd=self.dir)
        self.trusted = self.dir / "user_ca.pub"

    def key(self, name: str) -> Path:
        """A fresh key pair `name` (private key path; the public key is beside it)."""
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name, cwd=self.dir)
        return self.dir / name

    def certified(self, name: str, *, ca: str = "user_ca", principals: str = "alice",
                  validity: str = "-5m:+1h", serial: int = 1, options: tuple[str, ...] = (),
                  identity: str | None = None) -> Path:
        """A fresh key `name` with a certificate (`name-cert.pub`, which ssh -i picks up)."""
        key = self.key(name)
        args = ["-q", "-s", ca, "-I", identity or f"{name}-id", "-n", principals, "-V", validity,
                "-z", str(serial)]
        for option in options:
            args += ["-O", option]
        keygen(*args, f"{name}.pub", cwd=self.dir)
        assert (self.dir / f"{name}-cert.pub").exists()
        return key


def cert_config(pki: Pki, **public_key: object) -> dict:
    return h.deep_merge({"auth": {"publicKey": {"trustedUserCAKeys": str(pki.trusted), **public_key}}},
                        h.FORWARDING)


def assert_denied(result: h.Result) -> None:
    assert result.returncode == 255, result
    assert "Permission denied" in result.stderr, result


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


# ------------------------------------------------------------------------------------------
# User certificates


def test_certificate_logs_in(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("student", serial=4711, identity="student-2026")
    gw = scn.start(cert_config(pki))
    result = scn.client(gw, key=key).ssh("echo logged-in-with-a-certificate")
    assert (result.returncode, result.stdout) == (0, "logged-in-with-a-certificate\n"), result
    line = gw.wait_for_log(r"certificate accepted.*", 10).group(0)
    assert "student-2026" in line and "4711" in line, line
    assert fingerprint(pki.trusted).removeprefix("SHA256:") in line, line


def test_certificate_only_configuration(scn):
    """No authorized_keys at all: certificates are a method of their own."""
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("student")
    config = scn.config(cert_config(pki))
    config["auth"]["publicKey"].pop("authorizedKeys")
    config["auth"]["publicKey"]["method"] = ""
    gw = scn.start(config_path=scn.write_config(config, "certs-only.yaml"))
    assert scn.client(gw, key=key).ssh("true").returncode == 0
    # alice's plain key (listed in authorized_keys, which is not used now) does not log in.
    assert_denied(scn.client(gw).ssh("true"))


def test_expired_certificate_is_refused(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("old", validity="-2d:-1d")
    gw = scn.start(cert_config(pki))
    assert_denied(scn.client(gw, key=key).ssh("true"))


def test_not_yet_valid_certificate_is_refused(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("future", validity="+1d:+2d")
    gw = scn.start(cert_config(pki))
    assert_denied(scn.client(gw, key=key).ssh("true"))


def test_wrong_principal_is_refused(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("bobs", principals="bob")
    gw = scn.start(cert_config(pki))
    assert_denied(scn.client(gw, key=key).ssh("true"))
    gw.wait_for_log("no principal of the certificate is allowed", 10)
    # The same certificate is fine for the user it names.
    assert scn.client(gw, key=key, user="bob").ssh("true").returncode == 0


def test_untrusted_ca_is_refused(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("forged", ca="other_ca")
    gw = scn.start(cert_config(pki))
    assert_denied(scn.client(gw, key=key).ssh("true"))
    gw.wait_for_log("CA is not trusted", 10)


def test_source_address(scn):
    pki = Pki(scn.tmp / "pki")
    elsewhere = pki.certified("elsewhere", options=("source-address=10.0.0.0/8,192.0.2.0/24",))
    here = pki.certified("here", options=("source-address=10.0.0.0/8,127.0.0.0/8",))
    gw = scn.start(cert_config(pki))
    assert_denied(scn.client(gw, key=elsewhere).ssh("true"))
    gw.wait_for_log(r"source-address does not allow 127\.0\.0\.1", 10)
    assert scn.client(gw, key=here).ssh("true").returncode == 0


def test_authorized_principals_file(scn):
    pki = Pki(scn.tmp / "pki")
    principals = scn.tmp / "principals"
    principals.mkdir()
    (principals / "alice").write_text("# who may log in as alice\nstudents\n")
    student = pki.certified("student", principals="students")
    named = pki.certified("named", principals="alice")
    gw = scn.start(cert_config(pki, authorizedPrincipalsFile=str(principals / "%u")))
    result = scn.client(gw, key=student).ssh("echo student-in")
    assert (result.returncode, result.stdout) == (0, "student-in\n"), result
    # With a principals file, the login name alone is not enough ...
    assert_denied(scn.client(gw, key=named).ssh("true"))
    # ... and users without a file have no principals at all.
    assert_denied(scn.client(gw, key=student, user="bob").ssh("true"))


def test_principals_file_options_apply(scn):
    pki = Pki(scn.tmp / "pki")
    principals = scn.tmp / "principals"
    principals.mkdir()
    (principals / "alice").write_text('command="echo from-principals-file" ops\n')
    key = pki.certified("ops", principals="ops")
    gw = scn.start(cert_config(pki, authorizedPrincipalsFile=str(principals / "%u")))
    result = scn.client(gw, key=key).ssh("echo requested")
    assert (result.returncode, result.stdout) == (0, "from-principals-file\n"), result


# ------------------------------------------------------------------------------------------
# Revocation


def test_revoked_certificate_via_krl_without_restart(scn):
    pki = Pki(scn.tmp / "pki")
    revoked = pki.certified("revoked", serial=42)
    kept = pki.certified("kept", serial=43)
    krl = scn.tmp / "revoked.krl"
    keygen("-k", "-f", str(krl), cwd=pki.dir)  # an empty KRL
    gw = scn.start(cert_config(pki, revokedKeys=str(krl)))
    assert scn.client(gw, key=revoked).ssh("true").returncode == 0

    (pki.dir / "spec").write_text("serial: 42\n")
    keygen("-k", "-u", "-s", "user_ca.pub", "-f", str(krl), "spec", cwd=pki.dir)
    assert_denied(scn.client(gw, key=revoked).ssh("true"))
    gw.wait_for_log("the certificate is revoked", 10)
    assert scn.client(gw, key=kept).ssh("true").returncode == 0


def test_krl_revokes_plain_keys_and_ca_keys(scn):
    pki = Pki(scn.tmp / "pki")
    cert_key = pki.certified("student")
    krl = scn.tmp / "revoked.krl"
    keygen("-k", "-f", str(krl), str(scn.keys["alice"].with_suffix(".pub")), cwd=pki.dir)
    gw = scn.start(cert_config(pki, revokedKeys=str(krl)))
    assert_denied(scn.client(gw).ssh("true"))  # alice's plain key, listed in authorized_keys
    assert scn.client(gw, key=cert_key).ssh("true").returncode == 0

    keygen("-k", "-u", "-f", str(krl), "user_ca.pub", cwd=pki.dir)
    assert_denied(scn.client(gw, key=cert_key).ssh("true"))
    gw.wait_for_log("CA key is revoked", 10)


def test_plain_revoked_key_list(scn):
    pki = Pki(scn.tmp / "pki")
    cert_key = pki.certified("student")
    revoked = scn.tmp / "revoked_keys"
    revoked.write_text("# revoked keys\n")
    gw = scn.start(cert_config(pki, revokedKeys=str(revoked)))
    assert scn.client(gw).ssh("true").returncode == 0
    assert scn.client(gw, key=cert_key).ssh("true").returncode == 0

    revoked.write_text("# revoked keys\n" + scn.keys["alice"].with_suffix(".pub").read_text()
                       + (pki.dir / "student.pub").read_text())
    assert_denied(scn.client(gw).ssh("true"))
    assert_denied(scn.client(gw, key=cert_key).ssh("true"))


def test_unreadable_revocation_list_refuses_keys(scn):
    missing = scn.tmp / "no-such-file"
    gw = scn.start({"auth": {"publicKey": {"revokedKeys": str(missing)}}})
    assert_denied(scn.client(gw).ssh("true"))
    gw.wait_for_log("credential check failed", 10)
    # Passwords do not depend on it.
    assert scn.password_client(gw).ssh("true").returncode == 0


# ------------------------------------------------------------------------------------------
# Restrictions from certificates


def test_force_command(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("forced", options=('force-command=echo "forced: $SSH_ORIGINAL_COMMAND"',))
    gw = scn.start(cert_config(pki))
    result = scn.client(gw, key=key).ssh("echo requested")
    assert (result.returncode, result.stdout) == (0, "forced: echo requested\n"), result
    # A shell request runs it too, without SSH_ORIGINAL_COMMAND.
    result = scn.client(gw, key=key).ssh(input="echo typed\n")
    assert (result.returncode, result.stdout) == (0, "forced: \n"), result


def test_no_pty_certificate(scn):
    pki = Pki(scn.tmp / "pki")
    restricted = pki.certified("restricted", options=("no-pty",))
    allowed = pki.certified("allowed")
    gw = scn.start(cert_config(pki))
    assert_no_pty(scn.client(gw, key=restricted).ssh("tty", opts=["-tt"]))
    gw.wait_for_log("pty refused", 10)
    result = scn.client(gw, key=allowed).ssh("tty", opts=["-tt"])
    assert result.stdout.strip().startswith("/dev/pts/"), result


def assert_no_pty(result: h.Result) -> None:
    """`ssh -tt` was refused its terminal (OpenSSH then gives up on a forced terminal)."""
    assert "PTY allocation request failed" in result.stderr, result
    assert "/dev/pts" not in result.stdout, result


def verbose(args: list[str]) -> list[str]:
    """The client's command line with channel errors shown (the harness keeps only errors)."""
    return ["LogLevel=INFO" if arg == "LogLevel=ERROR" else arg for arg in args]


def stdio_forward(client: h.Client, port: int = 9) -> h.Result:
    """`ssh -W` to a port nobody listens on inside the container: a direct-tcpip channel."""
    return client.run_args(verbose(client.ssh_args(opts=["-W", f"127.0.0.1:{port}"])))


def test_no_port_forwarding_certificate(scn):
    pki = Pki(scn.tmp / "pki")
    restricted = pki.certified("restricted", options=("no-port-forwarding",))
    allowed = pki.certified("allowed")
    gw = scn.start(cert_config(pki))
    result = stdio_forward(scn.client(gw, key=restricted))
    assert result.returncode != 0 and "administratively prohibited" in result.stderr, result
    gw.wait_for_log("forwarding refused: not permitted", 10)
    # The same request with forwarding permitted reaches the container (and finds no listener).
    result = stdio_forward(scn.client(gw, key=allowed))
    assert "administratively prohibited" not in result.stderr and "open failed" in result.stderr, result


def test_local_forward_refused_by_certificate(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("restricted", options=("no-port-forwarding",))
    gw = scn.start(cert_config(pki))
    local = free_port()
    client = scn.client(gw, key=key)
    proc = scn.track(subprocess.Popen(
        verbose(client.ssh_args(opts=["-N", "-L", f"127.0.0.1:{local}:127.0.0.1:22"])),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def connect_and_read() -> bool:
        import socket
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.settimeout(30)
            return s.recv(1) == b""  # closed at once: the channel was refused

    h.wait_until(connect_and_read, 60, "a refused forwarded connection")
    gw.wait_for_log("forwarding refused: not permitted", 10)
    proc.kill()
    assert "administratively prohibited" in proc.communicate(timeout=30)[1].decode(), "no refusal reported"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_agent_and_x11_are_refused_but_the_session_works(scn):
    pki = Pki(scn.tmp / "pki")
    key = pki.certified("everything")  # ssh-keygen permits agent and X11 forwarding by default
    gw = scn.start(cert_config(pki))
    agent_sock = scn.tmp / "agent.sock"
    agent = scn.track(subprocess.Popen(["ssh-agent", "-D", "-a", str(agent_sock)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL))
    h.wait_until(agent_sock.exists, 30, "the ssh-agent socket")
    result = scn.client(gw, key=key).ssh(
        "echo still-works; echo agent=${SSH_AUTH_SOCK:-none} display=${DISPLAY:-none}",
        opts=["-A", "-X", "-o", "ForwardX11Trusted=yes"],
        env={"SSH_AUTH_SOCK": str(agent_sock), "DISPLAY": "127.0.0.1:99"})
    assert result.returncode == 0, result
    assert result.stdout == "still-works\nagent=none display=none\n", result
    # Agent forwarding is off unless the policy turns it on (test_agent_forwarding.py).
    gw.wait_for_log(r"rule=\"?security\.forwarding\.agentForwardingMode", 10)
    # So is X11 forwarding (test_x11_forwarding.py).
    gw.wait_for_log(r"rule=\"?security\.forwarding\.x11ForwardingMode", 10)
    agent.kill()


# ------------------------------------------------------------------------------------------
# authorized_keys options and cert-authority lines


def write_authorized_keys(scn, *lines: str) -> None:
    (scn.tmp / "authorized_keys" / "alice").write_text("".join(line + "\n" for line in lines))


def alice_key_line(scn) -> str:
    return scn.keys["alice"].with_suffix(".pub").read_text().strip()


def test_authorized_keys_command(scn):
    write_authorized_keys(scn, f'command="echo key-forced: $SSH_ORIGINAL_COMMAND" {alice_key_line(scn)}')
    gw = scn.start()
    result = scn.client(gw).ssh("echo requested")
    assert (result.returncode, result.stdout) == (0, "key-forced: echo requested\n"), result


def test_authorized_keys_no_pty(scn):
    write_authorized_keys(scn, f"no-pty {alice_key_line(scn)}")
    gw = scn.start()
    assert_no_pty(scn.client(gw).ssh("tty", opts=["-tt"]))
    # Without a terminal, the command runs as usual.
    result = scn.client(gw).ssh("tty")
    assert (result.returncode, result.stdout.strip()) == (1, "not a tty"), result


def test_clients_gone_while_their_containers_start_leave_nothing(scn):
    """`ssh -tt` refused its terminal gives up right after login, while the container is still
    being created: every creation finishes and is removed, none is abandoned half-way (the
    teardown's leak check fails the test otherwise)."""
    write_authorized_keys(scn, f"no-pty {alice_key_line(scn)}")
    gw = scn.start()
    client = scn.client(gw)
    procs = [client.popen("tty", opts=["-tt"]) for _ in range(20)]
    for proc in procs:
        _, err = proc.communicate(timeout=h.CONTAINER_TIMEOUT)
        assert "PTY allocation request failed" in err.decode(), err
    h.wait_no_containers(scn.run_id)
    assert "already in use" not in gw.log, "a container was created twice for one connection"


def test_authorized_keys_restrict_then_pty(scn):
    write_authorized_keys(scn, f"restrict,pty {alice_key_line(scn)}")
    gw = scn.start(h.FORWARDING)
    result = scn.client(gw).ssh("tty", opts=["-tt"])
    assert result.stdout.strip().startswith("/dev/pts/"), result
    result = stdio_forward(scn.client(gw))
    assert "administratively prohibited" in result.stderr, result


def test_authorized_keys_permitopen(scn):
    write_authorized_keys(scn, f'permitopen="127.0.0.1:9" {alice_key_line(scn)}')
    gw = scn.start(h.FORWARDING)
    allowed = stdio_forward(scn.client(gw))
    assert "administratively prohibited" not in allowed.stderr, allowed
    other = stdio_forward(scn.client(gw), port=10)
    assert "administratively prohibited" in other.stderr, other


def test_authorized_keys_from(scn):
    write_authorized_keys(scn, f'from="10.0.0.0/8,192.0.2.*" {alice_key_line(scn)}')
    gw = scn.start()
    assert_denied(scn.client(gw).ssh("true"))
    gw.wait_for_log("from= does not allow this address", 10)

    write_authorized_keys(scn, f'from="!192.0.2.1,127.0.0.*" {alice_key_line(scn)}')
    assert scn.client(gw).ssh("true").returncode == 0


def test_authorized_keys_cert_authority(scn):
    pki = Pki(scn.tmp / "pki")
    ca_line = (pki.dir / "user_ca.pub").read_text().strip()
    write_authorized_keys(scn, f'cert-authority,principals="lab",no-pty {ca_line}')
    lab = pki.certified("lab", principals="lab")
    named = pki.certified("named", principals="alice")
    gw = scn.start()  # no trustedUserCAKeys: only the cert-authority line trusts the CA
    assert_no_pty(scn.client(gw, key=lab).ssh("tty", opts=["-tt"]))
    line = gw.wait_for_log(r"certificate accepted.*", 10).group(0)
    assert "authorized_keys" in line, line
    assert_denied(scn.client(gw, key=named).ssh("true"))


# ------------------------------------------------------------------------------------------
# Host certificates


def host_ssh(scn, gw: h.Gateway, known_hosts: Path) -> h.Result:
    args = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=30", "-i", str(scn.keys["alice"]), "-p", str(gw.port),
            "alice@127.0.0.1", "echo host-trusted"]
    return scn.client(gw).run_args(args)


def test_host_certificate_accepted_with_cert_authority_known_hosts(scn):
    pki = Pki(scn.tmp / "pki")
    keygen("-q", "-t", "ed25519", "-N", "", "-C", "host_ca", "-f", "host_ca", cwd=pki.dir)
    keygen("-q", "-t", "ed25519", "-N", "", "-f", str(scn.host_key), cwd=scn.tmp)
    keygen("-q", "-s", str(pki.dir / "host_ca"), "-h", "-I", "sshpod-test-host", "-n", "127.0.0.1,localhost",
           "-V", "-5m:+1h", f"{scn.host_key}.pub", cwd=scn.tmp)
    host_cert = Path(f"{scn.host_key}-cert.pub")
    gw = scn.start({"ssh": {"hostCertificates": [str(host_cert)]}})
    gw.wait_for_log("host certificate", 10)

    known_hosts = scn.tmp / "known_hosts"
    known_hosts.write_text(f"@cert-authority * {(pki.dir / 'host_ca.pub').read_text().strip()}\n")
    result = host_ssh(scn, gw, known_hosts)
    assert (result.returncode, result.stdout) == (0, "host-trusted\n"), result

    # Control: trusting another CA is not enough.
    known_hosts.write_text(f"@cert-authority * {(pki.dir / 'other_ca.pub').read_text().strip()}\n")
    result = host_ssh(scn, gw, known_hosts)
    assert result.returncode == 255 and "Host key verification failed" in result.stderr, result


def test_host_certificate_for_another_key_is_a_startup_error(scn):
    pki = Pki(scn.tmp / "pki")
    other = pki.key("other_host")
    keygen("-q", "-s", "user_ca", "-h", "-I", "wrong", "-n", "127.0.0.1", f"{other}.pub", cwd=pki.dir)
    config = scn.write_config(scn.config({"ssh": {"hostCertificates": [f"{other}-cert.pub"]}}), "bad.yaml")
    result = h.run_sshpod(["--config", str(config)], cwd=scn.tmp)
    assert result.returncode != 0, result
    assert re.search(r"does not certify any of the host keys", result.stderr + result.stdout), result

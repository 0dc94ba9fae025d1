"""Authentication and configuration through ContainerSSH's webhooks, against an independent
webhook server (tests/webhook_server, written from ContainerSSH's documentation): password and
public key, authorization, per-user configuration with environment and files, slow, failing
and malformed answers, TLS with a private CA and client certificates, keyboard-interactive, and
the example server in examples/webhook-server."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

import harness as h

sys.path.insert(0, str(h.REPO_ROOT / "tests" / "webhook_server"))
from containerssh_webhooks import WebhookServer, entry, tls_context  # noqa: E402

PASSWORD = "webhook pass 1"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def hooks(request):
    servers: list[WebhookServer] = []

    def make(users=None, tls=None) -> WebhookServer:
        server = WebhookServer(users, tls)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def key_line(path: Path) -> str:
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def webhook(url: str, **extra) -> dict:
    return {"url": url, **extra}


def password_only(url: str, **extra) -> dict:
    return {"auth": {"password": {"method": "webhook", "webhook": webhook(url, **extra)},
                     "publicKey": {"method": ""}}}


def refused_login(gw: h.Gateway, password: str, user: str = "alice") -> tuple[int, str]:
    """Log in with a password until the server ends the connection; return the exit status and
    everything ssh printed. sshpod ends the connection with its reason right after refusing the
    attempt, so the client shows the reason on its next attempt (sshpass gives up after one)."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    child = pexpect.spawn("ssh", [*h.COMMON_SSH_OPTIONS, "-o", "PreferredAuthentications=password",
                                  "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=3",
                                  "-p", str(gw.port), f"{user}@127.0.0.1", "true"],
                          timeout=60, encoding="utf-8", env=env)
    output = ""
    while child.expect(["assword: ", pexpect.EOF]) == 0:
        output += child.before
        child.sendline(password)
    output += child.before
    child.close()
    return child.exitstatus, output


def test_password_webhook_login_sends_containerssh_fields(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD}})
    gw = scn.start(password_only(server.url))
    result = scn.password_client(gw, password=PASSWORD).ssh("echo logged-in")
    assert (result.returncode, result.stdout) == (0, "logged-in\n"), result
    assert h.wait_until(lambda: not h.containers(scn.run_id), h.CLEANUP_TIMEOUT, "container removed")

    [request] = server.seen("/password")
    assert request["username"] == "alice"
    assert base64.b64decode(request["passwordBase64"]).decode() == PASSWORD
    assert HEX32.match(request["connectionId"]), request
    assert request["clientVersion"].startswith("SSH-2.0-OpenSSH"), request
    assert request["remoteAddress"].startswith("127.0.0.1:"), request

    denied = scn.password_client(gw, password="wrong").ssh("true")
    assert denied.returncode == 255 and "Permission denied" in denied.stderr, denied


def test_public_key_webhook_login(scn, hooks):
    server = hooks({"alice": {"keys": [key_line(scn.keys["alice"])]}})
    gw = scn.start({"auth": {"publicKey": {"method": "webhook", "webhook": webhook(server.url)},
                             "password": {"method": ""}}})
    result = scn.client(gw).ssh("echo key-ok")
    assert (result.returncode, result.stdout) == (0, "key-ok\n"), result
    requests = server.seen("/pubkey")
    assert requests and all(r["publicKey"] == key_line(scn.keys["alice"]) for r in requests), requests
    assert len({r["connectionId"] for r in requests}) == 1
    assert len(requests) == 1, "the offer and the signed request make one call"

    denied = scn.client(gw, key=scn.keys["stranger"]).ssh("true")
    assert denied.returncode == 255 and "Permission denied" in denied.stderr, denied


def test_authorization_webhook_can_refuse_and_never_sees_sensitive_metadata(scn, hooks):
    users = {
        "alice": {"password": PASSWORD, "authenticated": "alice-lab",
                  "metadata": {"TEAM": entry("blue"), "TOKEN": entry("s3cret", sensitive=True)}},
        "bob": {"password": PASSWORD, "authz": False},
    }
    server = hooks(users)
    config = password_only(server.url)
    config["auth"]["authz"] = {"method": "webhook", "webhook": webhook(server.url)}
    gw = scn.start(config)

    denied = scn.password_client(gw, user="bob", password=PASSWORD).ssh("true")
    assert denied.returncode == 255 and "Permission denied" in denied.stderr, denied

    ok = scn.password_client(gw, password=PASSWORD).ssh("true")
    assert ok.returncode == 0, ok
    authz = {r["username"]: r for r in server.seen("/authz")}
    assert set(authz) == {"alice", "bob"}
    assert authz["alice"]["authenticatedUsername"] == "alice-lab"
    assert authz["alice"]["metadata"] == {"TEAM": {"value": "blue", "sensitive": False}}
    assert "s3cret" not in gw.log and "s3cret" not in str(server.requests)


def test_config_server_chooses_image_environment_and_files(scn, hooks, sh_only_image):
    token = b"token-for-alice\n"
    users = {
        "alice": {
            "password": PASSWORD,
            "environment": {"FROM_AUTH": entry("auth")},
            "files": {"/home/alice/.token": entry(base64.b64encode(token).decode(), sensitive=True)},
            "config_environment": {"COURSE": entry("operating-systems")},
            "config": {"docker": {"execution": {"container": {
                "Env": ["FROM_CONFIG=yes"], "Image": h.GUEST_IMAGE, "Cmd": None, "Tty": False}}}},
        },
        "bob": {
            "password": PASSWORD,
            "config": {"docker": {"execution": {"container": {"image": sh_only_image}}}},
        },
    }
    server = hooks(users)
    config = password_only(server.url)
    config["configserver"] = {"url": server.url + "/config"}
    gw = scn.start(config)

    alice = scn.password_client(gw, password=PASSWORD).ssh(
        'echo "$FROM_AUTH $COURSE $FROM_CONFIG"; cat /home/alice/.token; '
        'stat -c %a /home/alice/.token; test -x /bin/bash && echo has-bash')
    assert alice.returncode == 0, alice
    assert alice.stdout == "auth operating-systems yes\ntoken-for-alice\n600\nhas-bash\n", alice

    bob = scn.password_client(gw, user="bob", password=PASSWORD).ssh("test -x /bin/bash || echo no-bash")
    assert (bob.returncode, bob.stdout) == (0, "no-bash\n"), bob

    [request] = [r for r in server.seen("/config") if r["username"] == "alice"]
    assert request["authenticatedUsername"] == "alice"
    assert request["environment"] == {"FROM_AUTH": {"value": "auth", "sensitive": False}}
    assert "files" not in request, "sensitive files are not re-sent"
    assert "token-for-alice" not in gw.log


def test_metadata_labels_and_files_in_session_mode(scn, hooks):
    note = base64.b64encode(b"per-session note\n").decode()
    users = {"carol": {
        "password": PASSWORD,
        "metadata": {"TEAM": entry("blue"), "TOKEN": entry("s3cret", sensitive=True)},
        "files": {"/srv/notes/carol.txt": entry(note)},
        "config": {"docker": {"execution": {
            "mode": "session",
            "exposeAuthMetadataAsLabels": {"TEAM": "lab.team", "TOKEN": "lab.token"},
            "exposeAuthMetadataAsEnv": True}}},
    }}
    server = hooks(users)
    config = password_only(server.url)
    config["configserver"] = {"url": server.url + "/config"}
    gw = scn.start(config)
    client = scn.password_client(gw, user="carol", password=PASSWORD)
    session = scn.track(client.popen('cat /srv/notes/carol.txt; echo "$TEAM"; exec cat',
                                     stdin=subprocess.PIPE))
    [container] = h.wait_containers(scn.run_id)
    labels = h.container_labels(container)
    assert labels.get("lab.team") == "blue", labels
    assert "lab.token" not in labels, "sensitive metadata never becomes a label"
    session.stdin.close()
    out, err = session.stdout.read(), session.stderr.read()
    assert session.wait(60) == 0, err
    assert out.decode() == "per-session note\nblue\n", (out, err)


def test_bad_config_server_answer_refuses_the_login_with_a_reason(scn, hooks):
    users = {"alice": {"password": PASSWORD,
                       "config": {"docker": {"execution": {"container": {"imagee": "x"}}}}}}
    server = hooks(users)
    config = password_only(server.url)
    config["configserver"] = {"url": server.url + "/config"}
    gw = scn.start(config)
    status, output = refused_login(gw, PASSWORD)
    assert status == 255 and "configuration server's answer is not valid" in output, output
    gw.wait_for_log(r"docker\.execution\.container\.imagee.*did you mean `image`", 10)


def test_server_errors_are_retried(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD}})
    server.actions["/password"] = ["status:500", "status:503"]
    gw = scn.start(password_only(server.url))
    result = scn.password_client(gw, password=PASSWORD).ssh("echo retried")
    assert (result.returncode, result.stdout) == (0, "retried\n"), result
    assert len(server.seen("/password")) == 3


def test_malformed_answer_is_refused_and_logged(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD}})
    server.actions["/password"] = ["malformed"]
    gw = scn.start(password_only(server.url))
    status, output = refused_login(gw, PASSWORD)
    assert status == 255 and "authentication unavailable" in output, output
    gw.wait_for_log(r"/password gave a malformed answer", 10)
    assert len(server.seen("/password")) == 1, "a malformed answer is not retried"


def test_unknown_answer_field_is_malformed(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD}})
    server.actions["/password"] = ['raw:{"sucess": true}']
    gw = scn.start(password_only(server.url))
    result = scn.password_client(gw, password=PASSWORD).ssh("true")
    assert result.returncode == 255, result
    gw.wait_for_log(r"unknown field `sucess`", 10)


def test_webhook_that_does_not_answer_gives_authentication_unavailable(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD}})
    server.hang_users.add("alice")
    gw = scn.start(password_only(server.url, timeout="500ms", authTimeout="3s"))
    status, output = refused_login(gw, PASSWORD)
    assert status == 255 and "authentication unavailable" in output, output
    gw.wait_for_log(r"authentication unavailable", 10)
    assert len(server.seen("/password")) >= 2, "timed-out requests are retried"


def test_slow_webhook_does_not_hold_up_other_logins(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD}, "slowpoke": {"password": PASSWORD}})
    server.hang_users.add("slowpoke")
    gw = scn.start(password_only(server.url, timeout="60s", authTimeout="60s"))
    slow = scn.track(scn.password_client(gw, user="slowpoke", password=PASSWORD).popen(
        "true", env={"SSHPASS": PASSWORD}))
    h.wait_until(lambda: server.seen("/password"), 30, "the slow request to arrive")
    fast = scn.password_client(gw, password=PASSWORD).ssh("echo not-held-up")
    assert (fast.returncode, fast.stdout) == (0, "not-held-up\n"), fast
    assert slow.poll() is None, "the slow login is still waiting for its webhook"
    server.release.set()
    assert slow.wait(60) == 255


def make_pki(directory: Path) -> dict[str, Path]:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate, by openssl."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sshpod test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {name: directory / name for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_tls_with_private_ca_and_client_certificate(scn, hooks):
    pki = make_pki(scn.tmp)
    server = hooks({"alice": {"password": PASSWORD}},
                   tls=tls_context(str(pki["server.pem"]), str(pki["server.key"]), str(pki["ca.pem"])))
    assert server.url.startswith("https://")
    mtls = password_only(server.url, cacert=str(pki["ca.pem"]), cert=str(pki["client.pem"]),
                         key=str(pki["client.key"]), tlsVersion="1.2")
    gw = scn.start(mtls)
    result = scn.password_client(gw, password=PASSWORD).ssh("echo over-tls")
    assert (result.returncode, result.stdout) == (0, "over-tls\n"), result

    # Inline PEM works too; without the client certificate the server refuses the handshake.
    no_client_cert = password_only(server.url, cacert=pki["ca.pem"].read_text(), authTimeout="2s")
    gw2 = scn.start(no_client_cert)
    status, output = refused_login(gw2, PASSWORD)
    assert status == 255 and "authentication unavailable" in output, output

    # Without our CA the server's certificate is not trusted: verification is always on.
    untrusted = password_only(server.url, cert=str(pki["client.pem"]), key=str(pki["client.key"]),
                              authTimeout="2s")
    gw3 = scn.start(untrusted)
    refused = scn.password_client(gw3, password=PASSWORD).ssh("true")
    assert refused.returncode == 255, refused
    gw3.wait_for_log(r"(?i)certificate", 10)


def test_keyboard_interactive_password_then_one_time_code(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD, "otp": "424242",
                              "environment": {"MFA": entry("done")}}})
    gw = scn.start({"auth": {"keyboardInteractive": {"method": "webhook", "webhook": webhook(server.url)},
                             "password": {"method": ""}, "publicKey": {"method": ""}}})

    def login(otp: str) -> pexpect.spawn:
        child = pexpect.spawn("ssh", [*h.COMMON_SSH_OPTIONS, "-o", "PreferredAuthentications=keyboard-interactive",
                                      "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
                                      "-p", str(gw.port), "alice@127.0.0.1", "echo mfa=$MFA"],
                              timeout=60, encoding="utf-8")
        child.expect("Password: ")
        child.sendline(PASSWORD)
        child.expect("Verification code: ")
        child.sendline(otp)
        return child

    child = login("424242")
    child.expect("mfa=done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    child = login("000000")
    child.expect("Permission denied")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 255
    rounds = [r["round"] for r in server.seen("/keyboard-interactive")]
    assert rounds == [1, 2, 3, 1, 2, 3], rounds


def test_certificate_details_reach_the_public_key_webhook(scn, hooks):
    ca = scn.tmp / "user_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    key = scn.tmp / "id_cert"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "alice@lab", "-n", "alice,admin",
                    "-z", "42", "-V", "+1h", str(key.with_suffix(".pub"))], check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(ca.with_suffix(".pub"))],
                                 check=True, capture_output=True, text=True).stdout.split()[1]
    server = hooks({"alice": {"ca_fingerprint": fingerprint}})
    gw = scn.start({"auth": {"publicKey": {"method": "webhook", "webhook": webhook(server.url)},
                             "password": {"method": ""}}})
    result = scn.client(gw, key=key).ssh(
        "echo cert-ok", opts=["-o", f"CertificateFile={key}-cert.pub"])
    assert (result.returncode, result.stdout) == (0, "cert-ok\n"), result
    certs = [r["certificate"] for r in server.seen("/pubkey") if "certificate" in r]
    assert certs, server.requests
    cert = certs[-1]
    assert cert["keyId"] == "alice@lab"
    assert cert["serial"] == 42
    assert cert["principals"] == ["alice", "admin"]
    assert cert["caFingerprint"] == fingerprint
    assert cert["certType"] == "user"
    assert "permit-pty" in cert["extensions"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", cert["validBefore"]), cert


def test_example_webhook_server(scn):
    example = h.REPO_ROOT / "examples" / "webhook-server"
    proc = scn.track(subprocess.Popen(
        [sys.executable, str(example / "server.py"), "--listen", "127.0.0.1:0",
         "--users", str(example / "users.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    assert match, line
    url = match.group(1)
    config = password_only(url)
    config["auth"]["keyboardInteractive"] = {"method": "webhook", "webhook": webhook(url)}
    config["configserver"] = {"url": url + "/config"}
    gw = scn.start(config)
    result = scn.password_client(gw, user="student1", password="change me").ssh("echo $COURSE")
    assert (result.returncode, result.stdout) == (0, "intro-to-unix\n"), result
    denied = scn.password_client(gw, user="student1", password="wrong").ssh("true")
    assert denied.returncode == 255, denied


def test_certificates_keys_and_the_webhook_combine_in_the_documented_order(scn, hooks):
    """Trusted CAs decide certificates without the webhook; plain keys go to the webhook;
    a revoked key is refused before the webhook is asked."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_certificates import Pki

    pki = Pki(scn.tmp / "pki")
    certified = pki.certified("student")
    revoked = pki.key("revoked")
    (scn.tmp / "revoked_keys").write_text(revoked.with_suffix(".pub").read_text())
    server = hooks({"alice": {"keys": [key_line(scn.keys["alice"]), key_line(revoked)]}})
    gw = scn.start({"auth": {
        "publicKey": {"method": "webhook", "webhook": webhook(server.url),
                      "trustedUserCAKeys": str(pki.trusted), "revokedKeys": str(scn.tmp / "revoked_keys")},
        "password": {"method": ""}}})

    by_certificate = scn.client(gw, key=certified).ssh("echo cert")
    assert (by_certificate.returncode, by_certificate.stdout) == (0, "cert\n"), by_certificate
    # (OpenSSH may offer the bare key first; that goes to the webhook, which does not know it.)
    asked = [r["publicKey"] for r in server.seen("/pubkey")]
    assert not any("-cert-" in k for k in asked), "a certificate from a trusted CA needs no webhook"

    by_key = scn.client(gw).ssh("echo key")
    assert (by_key.returncode, by_key.stdout) == (0, "key\n"), by_key
    assert key_line(scn.keys["alice"]) in [r["publicKey"] for r in server.seen("/pubkey")]

    refused = scn.client(gw, key=revoked).ssh("true")
    assert refused.returncode == 255, refused
    asked = [r["publicKey"] for r in server.seen("/pubkey")]
    assert key_line(revoked) not in asked, "a revoked key never reaches the webhook"


def test_credentials_in_a_webhook_url_never_reach_the_log_or_check_config(scn, hooks):
    """`http://user:TOKEN@host` is how many auth servers take a token: it is sent (as basic
    authentication) but shown as `<secret>` in every log line and in check-config."""
    server = hooks({"alice": {"password": PASSWORD}})
    server.actions["/password"] = ["malformed"]
    token = "tok-3f9a1c"
    url = server.url.replace("http://", f"http://hook:{token}@")
    config = scn.config(password_only(url))
    path = scn.write_config(config, "with-token.yaml")
    shown = h.run_sshpod(["check-config", "--config", str(path)])
    assert shown.returncode == 0 and token not in shown.stdout + shown.stderr, shown
    assert "http://<secret>@127.0.0.1" in shown.stdout, shown.stdout
    revealed = h.run_sshpod(["check-config", "--show-secrets", "--config", str(path)])
    assert token in revealed.stdout

    gw = scn.start(config_path=path)
    status, output = refused_login(gw, PASSWORD)
    assert status == 255 and "authentication unavailable" in output, output
    gw.wait_for_log(r"http://<secret>@127\.0\.0\.1:\d+/password gave a malformed answer", 10)
    assert token not in gw.log
    assert len(server.seen("/password")) == 1, "the request still went out"


def test_an_auth_server_outage_does_not_lock_users_out_afterwards(scn, hooks):
    """Logins refused because the webhook was down are not the users' failures: once it is back,
    the same address logs in at once (no ssh.perSourcePenalties for an outage)."""
    server = hooks({"alice": {"password": PASSWORD}})
    server.hang_users.add("alice")
    gw = scn.start(password_only(server.url, timeout="300ms", authTimeout="1s"))
    for _ in range(4):
        status, output = refused_login(gw, PASSWORD)
        assert status == 255 and "authentication unavailable" in output, output
    server.hang_users.discard("alice")
    result = scn.password_client(gw, password=PASSWORD).ssh("echo back")
    assert (result.returncode, result.stdout) == (0, "back\n"), result
    assert "ssh.perSourcePenalties" not in gw.log

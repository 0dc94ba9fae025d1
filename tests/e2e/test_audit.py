"""Session recordings with OpenSSH clients and a real engine: a terminal session replays with
asciinema as the client saw it, the event log's chain verifies, passwords stay out unless
intercepted, a recording that is required refuses what it cannot record, and a `kill -9` of
sshpod loses nothing that was written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
from pathlib import Path

import pexpect

import harness as h

ASCIINEMA = str(h.REPO_ROOT / ".venv" / "bin" / "asciinema")


def recording(directory: Path, **audit) -> dict:
    directory.mkdir(exist_ok=True)
    settings = {"enable": True, "format": "sshpod", "storage": "file",
                "file": {"directory": str(directory)}}
    settings.update(audit)
    return {"audit": settings}


def recordings(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def state(directory: Path, connection: str) -> dict:
    return json.loads((directory / ".state" / f"{connection}.json").read_text())


def complete_recordings(directory: Path, count: int = 1) -> list[Path]:
    """Waits until `count` recordings are complete (their connections ended)."""
    def done():
        found = recordings(directory)
        return found if len(found) >= count and all(state(directory, p.name)["complete"] for p in found) else None
    return h.wait_until(done, 60, f"{count} complete recording(s) in {directory}")


def events(entry: Path) -> list[dict]:
    return [json.loads(line) for line in (entry / "events.jsonl").read_text().splitlines()]


def verify_chain(entry: Path) -> str:
    """Checks the event log's hash chain as the format describes it; returns the digest."""
    head = "0" * 64
    for number, line in enumerate((entry / "events.jsonl").read_bytes().splitlines(), 1):
        content, _, link = line.rpartition(b',"chain":"')
        assert link.endswith(b'"}') and len(link) == 66, f"line {number} has no link"
        head_next = hashlib.sha256(head.encode() + content + b"}").hexdigest()
        assert head_next == link[:64].decode(), f"the chain breaks at line {number}"
        head = head_next
    return head


def file_digests_match(entry: Path) -> None:
    for line in events(entry):
        if line["kind"] == "recording-file":
            data = (entry / line["file"]).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (line["bytes"], line["sha256"]), line


def test_a_terminal_session_replays_with_asciinema_as_the_client_saw_it(scn):
    audit_dir = scn.tmp / "audit"
    gw = scn.start(recording(audit_dir))
    client = scn.client(gw)
    args = client.ssh_args(opts=["-tt"])
    child = pexpect.spawn(args[0], args[1:], env=client._env({"TERM": "xterm-256color"}),
                          dimensions=(24, 80), timeout=60)
    child.logfile_read = io.BytesIO()
    try:
        child.expect(rb"[#$] ")
        child.sendline(b"top -d 0.3")
        child.expect(b"load average")
        child.setwinsize(30, 100)
        # top redraws for the new size; wait for a second screen after the resize.
        child.expect(b"load average")
        child.expect(b"load average")
        child.sendcontrol("c")
        child.expect(rb"[#$] ")
        child.sendline(b"echo done-$((6*7))")
        child.expect(b"done-42")
        child.sendline(b"exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    seen = child.logfile_read.getvalue()

    [entry] = complete_recordings(audit_dir)
    verify_chain(entry)
    file_digests_match(entry)
    log = events(entry)
    kinds = [line["kind"] for line in log]
    assert kinds[0] == "connected" and kinds[-1] == "end", kinds
    for kind in ("login-accepted", "pty", "process-starting", "resize", "process-exited", "closed"):
        assert kind in kinds, kinds
    resize = next(line for line in log if line["kind"] == "resize")
    assert (resize["cols"], resize["rows"]) == (100, 30), resize
    [cast] = list(entry.glob("channel-*.cast"))
    header = json.loads(cast.read_text().splitlines()[0])
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24), header

    # What asciinema replays is what the client's terminal received.
    replayed = subprocess.run([ASCIINEMA, "cat", str(cast)], capture_output=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr
    assert b"load average" in replayed.stdout and b"done-42" in replayed.stdout
    assert replayed.stdout in seen, (len(replayed.stdout), len(seen))
    # And `asciinema play` plays the file as it is.
    player = pexpect.spawn(ASCIINEMA, ["play", "--speed", "20", "--idle-time-limit", "0.05", str(cast)],
                           dimensions=(30, 100), timeout=60)
    player.expect(b"done-42")
    player.expect(pexpect.EOF)
    player.close()
    assert player.exitstatus == 0


def test_passwords_stay_out_of_recordings_unless_intercepted(scn):
    plain_dir, intercepted_dir = scn.tmp / "plain", scn.tmp / "intercepted"
    for directory, intercept in ((plain_dir, {}), (intercepted_dir, {"passwords": True})):
        gw = scn.start(recording(directory, intercept=intercept))
        wrong = scn.password_client(gw, password="wrong-horse-battery").ssh("true")
        assert wrong.returncode == 255, wrong
        right = scn.password_client(gw).ssh("echo in")
        assert right.stdout == "in\n", right
        gw.stop()
    for entry in complete_recordings(plain_dir, 2):
        for path in entry.iterdir():
            assert b"wrong-horse-battery" not in path.read_bytes(), path
    logged = [line for entry in complete_recordings(intercepted_dir, 2) for line in events(entry)]
    refused = [line for line in logged if line["kind"] == "login-refused"]
    assert any(line.get("password") == "wrong-horse-battery" for line in refused), refused


def test_a_required_recording_refuses_connections_it_cannot_record(scn):
    audit_dir = scn.tmp / "audit"
    gw = scn.start(recording(audit_dir, required=True))
    client = scn.client(gw)
    assert client.ssh("echo recorded").stdout == "recorded\n"
    # The directory goes (an unmounted volume): no recording, no session.
    os.rename(audit_dir, scn.tmp / "moved")
    refused = client.ssh("echo unrecorded")
    assert refused.returncode == 255, refused
    assert "sessions cannot be recorded now" in refused.stderr, refused
    assert "unrecorded" not in refused.stdout
    h.wait_no_containers(scn.run_id)


def test_a_killed_server_loses_nothing_it_wrote_and_the_next_start_closes_the_recording(scn):
    audit_dir = scn.tmp / "audit"
    config = scn.write_config(scn.config(recording(audit_dir, intercept={"stdout": True})), "audit.yaml")
    gw = scn.start(config_path=config)
    client = scn.client(gw)
    session = client.popen("for i in 1 2 3; do echo line-$i; done; sleep 300",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def written():
            found = recordings(audit_dir)
            outputs = [p for p in found[0].glob("channel-*.stdout")] if found else []
            return outputs and b"line-3" in outputs[0].read_bytes()
        h.wait_until(written, 60, "the session's output in its recording")
        gw.signal(signal.SIGKILL)
        gw.wait_exit(30)
    finally:
        session.kill()
        session.wait(30)
    [entry] = recordings(audit_dir)
    assert not state(audit_dir, entry.name)["complete"]

    # The next start closes it: digests of its files, an `end` saying it was interrupted.
    scn.start(config_path=config, name="restarted")
    assert state(audit_dir, entry.name)["complete"]
    verify_chain(entry)
    file_digests_match(entry)
    end = events(entry)[-1]
    assert end["kind"] == "end" and end["interrupted"] is True, end
    stdout = next(entry.glob("channel-*.stdout")).read_bytes()
    assert stdout == b"line-1\nline-2\nline-3\n", stdout


def test_sftp_and_scp_transfers_are_recorded_with_paths_sizes_and_digests(scn):
    audit_dir = scn.tmp / "audit"
    gw = scn.start(recording(audit_dir))
    client = scn.client(gw)
    upload = scn.tmp / "upload.bin"
    upload.write_bytes(os.urandom(300_000))
    legacy = scn.tmp / "legacy.txt"
    legacy.write_bytes(b"sent with scp's own protocol\n" * 1000)
    fetched = scn.tmp / "fetched.bin"
    batch = scn.tmp / "batch"
    batch.write_text(f"put {upload} /tmp/up.bin\nget /tmp/up.bin {fetched}\nrename /tmp/up.bin /tmp/moved.bin\n"
                     f"mkdir /tmp/made\nrmdir /tmp/made\nrm /tmp/moved.bin\n")
    # Everything through one connection (one container), so the files stay between steps.
    control = scn.control_path(client)
    opts = h.control_options(control)
    result = client.run_args(client.sftp_args(opts=[*opts, "-b", str(batch)]))
    assert result.returncode == 0, result
    assert fetched.read_bytes() == upload.read_bytes()
    scp = client.run_args(client.scp_args(str(legacy), client.remote("/tmp/legacy.txt"), opts=[*opts, "-O"]))
    assert scp.returncode == 0, scp
    # OpenSSH's scp speaks SFTP by default: the same file back that way.
    back = scn.tmp / "back.txt"
    scp = client.run_args(client.scp_args(client.remote("/tmp/legacy.txt"), str(back), opts=opts))
    assert scp.returncode == 0 and back.read_bytes() == legacy.read_bytes(), scp
    h.close_control_master(client, control)

    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    ops = [line for entry in complete_recordings(audit_dir, 1) for line in events(entry)
           if line["kind"].startswith(("file-", "dir-"))]
    def one(kind, path):
        found = [op for op in ops if op["kind"] == kind and op["path"] == path]
        assert found, (kind, path, ops)
        return found[0]
    written = one("file-written", "/tmp/up.bin")
    assert (written["bytes"], written["sha256"]) == (300_000, digest(upload)), written
    read = one("file-read", "/tmp/up.bin")
    assert (read["bytes"], read["sha256"]) == (300_000, digest(upload)), read
    assert one("file-renamed", "/tmp/up.bin")["to"] == "/tmp/moved.bin"
    one("dir-created", "/tmp/made")
    one("dir-removed", "/tmp/made")
    one("file-removed", "/tmp/moved.bin")
    legacy_written = one("file-written", "/tmp/legacy.txt")
    assert (legacy_written["bytes"], legacy_written["sha256"]) == (legacy.stat().st_size, digest(legacy))
    legacy_read = one("file-read", "/tmp/legacy.txt")
    assert legacy_read["sha256"] == digest(legacy), legacy_read


def test_the_servers_recordings_page_plays_a_session_it_recorded(scn):
    from selenium.webdriver.common.by import By
    from test_web_player import BROWSER_TIMEOUT, chromium, log_in, player_assets, terminal_text

    audit_dir = scn.tmp / "audit"
    token = "page-token-" + os.urandom(8).hex()
    web = {"listen": "127.0.0.1:0", "token": token, "assets": str(player_assets())}
    gw = scn.start(recording(audit_dir, web=web))
    url = gw.wait_for_log(r"recordings page\b.*?url=\"?(http[^\"\s]+)", 30).group(1)
    client = scn.client(gw)
    typed = client.ssh(opts=["-tt"], input=b"echo played-$((6*7)) in the browser; exit\n")
    assert "played-42" in typed.stdout, typed
    [entry] = complete_recordings(audit_dir)

    driver = chromium()
    try:
        log_in(driver, url.rstrip("/") + "/", token)
        rows = h.wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#recordings tbody tr"),
                            BROWSER_TIMEOUT, "the recording listed")
        assert [row.get_attribute("data-id") for row in rows] == [entry.name]
        rows[0].click()
        h.wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#player .ap-playback-button"),
                     BROWSER_TIMEOUT, "the player")
        driver.find_element(By.CSS_SELECTOR, "#player .ap-playback-button").click()
        h.wait_until(lambda: "played-42 in the browser" in terminal_text(driver), BROWSER_TIMEOUT,
                     "the recorded output drawn by the player")
        kinds = [item.get_attribute("data-kind") for item in driver.find_elements(By.CSS_SELECTOR, "#events li")]
        assert "login-accepted" in kinds and "end" in kinds, kinds
    finally:
        driver.quit()


# -- S3 ------------------------------------------------------------------------------------

MOTO_SERVER = h.REPO_ROOT / ".venv-moto" / "bin" / "moto_server"
BUCKET = "recordings"


class Moto:
    """A real S3-compatible store (moto_server) on loopback; in memory, so a restart is empty."""

    def __init__(self, tmp: Path, port: int | None = None):
        if not MOTO_SERVER.is_file():
            raise AssertionError(f"{MOTO_SERVER} is missing: scripts/lib.sh's ensure_venv installs it")
        self.port = port or h.free_port()
        self.log = open(tmp / f"moto-{self.port}.log", "ab")
        self.proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        h.wait_until(lambda: h.port_open(self.port), 60, "moto_server listening")
        self.request("PUT", f"/{BUCKET}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # moto checks that a request names a credential, not its signature.
    AUTH = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, "
            "Signature=00")

    def request(self, method: str, path: str) -> bytes:
        import urllib.request
        request = urllib.request.Request(self.endpoint + path, method=method, headers={"Authorization": self.AUTH})
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.read()

    def keys(self) -> list[str]:
        import re
        listing = self.request("GET", f"/{BUCKET}?list-type=2&max-keys=1000").decode()
        return re.findall(r"<Key>([^<]+)</Key>", listing)

    def get(self, key: str) -> bytes:
        return self.request("GET", f"/{BUCKET}/{key}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self.log.close()


def s3_recording(spool: Path, moto: Moto, **audit) -> dict:
    spool.mkdir(exist_ok=True)
    settings = {"enable": True, "format": "sshpod", "storage": "s3",
                "s3": {"local": str(spool), "bucket": BUCKET, "endpoint": moto.endpoint, "region": "us-east-1",
                       "accessKey": "test-access", "secretKey": "test-secret", "pathStyleAccess": True,
                       "metadata": {"username": True, "ip": True}},
                "intercept": {"stdout": True}}
    settings.update(audit)
    return {"audit": settings}


def uploaded(moto: Moto, connection: str) -> Path | None:
    """The connection's recording as the bucket holds it, once its `end` is there."""
    keys = [k for k in moto.keys() if k.startswith(connection + "/")]
    if f"{connection}/events.jsonl" not in keys:
        return None
    log = moto.get(f"{connection}/events.jsonl")
    if b'"kind":"end"' not in log:
        return None
    return keys


def test_recordings_reach_the_bucket_through_an_outage_and_a_kill_9(scn):
    spool = scn.tmp / "spool"
    moto = Moto(scn.tmp)
    try:
        config = scn.write_config(scn.config(s3_recording(spool, moto)), "s3.yaml")
        gw = scn.start(config_path=config)
        client = scn.client(gw)
        assert client.ssh("echo first").stdout == "first\n"
        [first] = h.wait_until(lambda: [p.name for p in recordings(spool)] or None, 30, "the first recording")
        h.wait_until(lambda: uploaded(moto, first), 60, "the first recording in the bucket")
        h.wait_until(lambda: not (spool / first).exists(), 60, "the first recording gone from the spool")

        # The store goes down: a session ends, another is cut by a kill -9 of sshpod.
        port = moto.port
        moto.stop()
        assert client.ssh("echo during the outage").stdout == "during the outage\n"
        running = client.popen("echo cut-by-kill; sleep 300")
        h.wait_until(lambda: len(recordings(spool)) == 2 and any(
            b"cut-by-kill" in p.read_bytes() for r in recordings(spool) for p in r.glob("channel-*.stdout")),
            60, "the running session's output in the spool")
        gw.signal(signal.SIGKILL)
        gw.wait_exit(30)
        running.kill()
        running.wait(30)
        ids = [p.name for p in recordings(spool)]

        # The store and sshpod come back: everything arrives, closed and verifiable.
        moto = Moto(scn.tmp, port)
        restarted = scn.start(config_path=config, name="restarted")
        for connection in ids:
            h.wait_until(lambda: uploaded(moto, connection), 90, f"{connection} in the bucket")
        outputs = set()
        for connection in ids:
            log = moto.get(f"{connection}/events.jsonl")
            lines = [json.loads(line) for line in log.splitlines()]
            assert lines[-1]["kind"] == "end", lines[-1]
            for line in lines:
                if line["kind"] == "recording-file":
                    data = moto.get(f"{connection}/{line['file']}")
                    assert hashlib.sha256(data).hexdigest() == line["sha256"], line
                    outputs.add(data)
        assert outputs == {b"during the outage\n", b"cut-by-kill\n"}, outputs
        h.wait_until(lambda: recordings(spool) == [], 60, "the spool emptied")

        # `sshpod audit verify --s3` reads the bucket.
        verify = h.run_sshpod(["--config", str(config), "audit", "verify", "--s3"])
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert restarted.stop() == 0
    finally:
        moto.stop()


def test_a_required_recording_ends_a_session_when_the_spool_is_full(scn):
    spool = scn.tmp / "spool"
    moto = Moto(scn.tmp)
    try:
        limit = 6 * 1024 * 1024
        settings = s3_recording(spool, moto, required=True)
        settings["audit"]["s3"]["maxSpoolSize"] = limit
        gw = scn.start(settings)
        client = scn.client(gw)
        moto.stop()  # nothing leaves the spool
        flood = client.ssh("head -c 20000000 /dev/zero; sleep 60", timeout=120)
        assert flood.returncode == 255, flood
        assert "recording failed" in flood.stderr, flood
        total = sum(p.stat().st_size for r in recordings(spool) for p in r.iterdir())
        assert total <= limit + 1024 * 1024, total
    finally:
        moto.stop()


def test_a_config_server_turns_recording_on_for_one_user(scn):
    import shutil
    import sys
    sys.path.insert(0, str(h.REPO_ROOT / "tests" / "webhook_server"))
    from containerssh_webhooks import WebhookServer

    audit_dir = scn.tmp / "audit"
    server = WebhookServer({
        "alice": {"config": {"audit": {"enable": True, "intercept": {"stdout": True}}}},
        "bob": {"config": {}},
    })
    # bob logs in with alice's key; only the config server's answers tell them apart.
    shutil.copy(scn.tmp / "authorized_keys" / "alice", scn.tmp / "authorized_keys" / "bob")
    try:
        settings = recording(audit_dir, enable=False)
        config = h.deep_merge(scn.config(settings), {"configserver": {"url": server.url + "/config"}})
        gw = scn.start(config_path=scn.write_config(config))
        assert scn.client(gw, user="bob").ssh("echo not recorded").stdout == "not recorded\n"
        assert scn.client(gw).ssh("echo recorded for alice").stdout == "recorded for alice\n"
        [entry] = complete_recordings(audit_dir)
        log = events(entry)
        kinds = [line["kind"] for line in log]
        # What happened before the config server answered is in the recording too.
        assert kinds[:4] == ["connected", "config-applied", "login-accepted", "recording-settings"], kinds
        assert next(line for line in log if line["kind"] == "config-applied")["sections"] == ["audit"]
        assert next(entry.glob("channel-*.stdout")).read_bytes() == b"recorded for alice\n"
        verify_chain(entry)
    finally:
        server.close()


def test_forwarded_connections_are_recorded_with_their_destination_and_bytes_when_intercepted(scn):
    from test_transfer import serve_through_forward

    audit_dir = scn.tmp / "audit"
    gw = scn.start(h.deep_merge(h.FORWARDING, recording(audit_dir, intercept={"forwarding": True})))
    client = scn.client(gw)
    fetch = serve_through_forward(scn, client, "recorded-through-the-tunnel")
    response = h.wait_until(fetch, 60, "an HTTP answer through the forwarded port")
    assert b"recorded-through-the-tunnel" in response, response
    gw.stop()

    [entry] = complete_recordings(audit_dir)
    verify_chain(entry)
    file_digests_match(entry)
    forwards = [line for line in events(entry)
                if line["kind"] == "channel-opened" and line.get("channelKind") == "direct-tcpip"]
    assert forwards and (forwards[0]["host"], forwards[0]["port"]) == ("127.0.0.1", 8080), forwards
    channels = {line["channel"] for line in forwards}
    sent = b"".join((entry / f"channel-{c}.stdin").read_bytes() for c in channels
                    if (entry / f"channel-{c}.stdin").exists())
    received = b"".join((entry / f"channel-{c}.stdout").read_bytes() for c in channels
                        if (entry / f"channel-{c}.stdout").exists())
    assert b"GET /index.html" in sent, sent
    assert b"recorded-through-the-tunnel" in received, received

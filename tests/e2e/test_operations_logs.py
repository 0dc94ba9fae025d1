"""Operating sshpod: logs people can search (ContainerSSH's `ljson` lines with a code each, a log
file that logrotate can rotate, syslog over a unix socket and UDP) and reloading the
configuration without a restart (SIGHUP and `sshpod reload`), running sessions untouched."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

import harness as h

LJSON_MEMBERS = ["timestamp", "level", "code", "message", "details"]
LEVELS = {"debug", "info", "notice", "warning", "error", "crit", "alert", "emerg"}
# A debug line every connection writes, and the line its login writes at the default level.
DEBUG_LINE = "connection accepted"
LOGIN_LINE = "login accepted"


def documented_codes() -> set[str]:
    """The log codes the README's table lists (itself checked against the code by a unit test)."""
    readme = (h.REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("### Log codes"):]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.MULTILINE))


def start(scn, overrides: dict, name: str = "gw", wait: bool = True) -> tuple[h.Gateway, Path, Path]:
    """A gateway with its own control socket; returns it, its config file and the socket."""
    config_path = scn.write_config(scn.config(overrides), f"{name}.yaml")
    control = scn.sock_dir / f"{name}.ctl"
    gateway = h.Gateway(name, config_path, args=["--config", str(config_path), "--control-socket", str(control)])
    scn.gateways.append(gateway)
    if wait:
        gateway.wait_ready()
    return gateway, config_path, control


def records(gw: h.Gateway) -> list[dict]:
    """The gateway's standard output, parsed: every line must be one JSON object."""
    out = []
    for line in gw.log.splitlines():
        if line.startswith("stderr| "):
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not an ljson line: {line!r}") from exc
    return out


def count(gw: h.Gateway, message: str) -> int:
    return sum(1 for r in records(gw) if r["message"] == message)


# The codes of a reload's outcome.
OUTCOMES = {"SSHPOD_RELOADED", "SSHPOD_RELOAD_UNCHANGED", "SSHPOD_RELOAD_NEEDS_RESTART", "SSHPOD_RELOAD_FAILED",
            "CORE_CONFIG_ERROR"}


def outcomes(gw: h.Gateway) -> list[dict]:
    return [r for r in records(gw) if r["code"] in OUTCOMES]


def reload_with(trigger: str, gw: h.Gateway, control: Path) -> tuple[dict, str]:
    """Asks for a reload by SIGHUP or `sshpod reload`; returns the outcome's log line and the
    command's answer ("" for a signal)."""
    done = len(outcomes(gw))
    answer = ""
    if trigger == "sighup":
        gw.signal(signal.SIGHUP)
    else:
        result = h.run_sshpod(["--control-socket", str(control), "reload"])
        answer = result.stdout
        assert result.returncode in (0, 1, 2), result
    h.wait_until(lambda: len(outcomes(gw)) > done, 30, "the reload's outcome in the log")
    return outcomes(gw)[done], answer


class Shell:
    """A session that runs across reloads: each line sent is answered with the container's name."""

    def __init__(self, scn, client: h.Client):
        script = 'echo started; while read line; do echo "$line $(cat /etc/hostname)"; done'
        self.proc = scn.track(client.popen(script, stdin=subprocess.PIPE))
        line = h.read_line(self.proc.stdout, h.CONTAINER_TIMEOUT)
        assert line == b"started\n", (line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def ask(self, word: str) -> str:
        self.proc.stdin.write(f"{word}\n".encode())
        self.proc.stdin.flush()
        answer = h.read_line(self.proc.stdout, h.COMMAND_TIMEOUT).decode().split()
        assert answer[0] == word, answer
        return answer[1]

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(h.COMMAND_TIMEOUT) == 0


def container_id(scn, hostname: str) -> str:
    """The id of the run's container whose host name is `hostname` (the start of its id)."""
    ids = [i for i in h.containers(scn.run_id) if i.startswith(hostname)]
    assert len(ids) == 1, (hostname, h.containers(scn.run_id))
    return ids[0]


def login_then_count_debug(scn, gw: h.Gateway, client: h.Client) -> int:
    """Logs in once and returns how many debug lines of connections the log has by then."""
    logins = count(gw, LOGIN_LINE)
    result = client.ssh("true")
    assert result.returncode == 0, result
    h.wait_until(lambda: count(gw, LOGIN_LINE) > logins, 10, "the login's line")
    return count(gw, DEBUG_LINE)


@pytest.mark.parametrize("trigger", ["sighup", "command"])
def test_reload_swaps_keys_and_log_level_without_touching_running_sessions(scn, trigger):
    overrides = {"log": {"level": "notice", "format": "ljson"}}
    gw, config_path, control = start(scn, overrides)
    alice = scn.client(gw)
    stranger = scn.client(gw, key=scn.keys["stranger"])
    assert login_then_count_debug(scn, gw, alice) == 0, "a debug line at level notice"

    shell = Shell(scn, alice)
    container = shell.ask("before")

    # The new file names another authorized keys file (the stranger's key only) and level debug.
    new_keys = scn.tmp / "authorized_keys_new"
    new_keys.mkdir()
    shutil.copy(scn.keys["stranger"].with_suffix(".pub"), new_keys / "alice")
    # New containers get another label: the backend's settings change too.
    labels = {h.TEST_LABEL: scn.run_id, "sshpod-reloaded": "yes"}
    scn.write_config(scn.config({
        "log": {"level": "debug", "format": "ljson"},
        "auth": {"publicKey": {"authorizedKeys": {"file": str(new_keys / "%u")}}},
        "docker": {"execution": {"container": {"labels": labels}}},
    }), config_path.name)
    outcome, answer = reload_with(trigger, gw, control)
    if trigger == "command":
        assert answer == "applied: changed auth, docker, log\n", answer
    assert (outcome["code"], outcome["details"]["sections"]) == ("SSHPOD_RELOADED", "auth, docker, log"), outcome
    assert count(gw, "log level changed") == 1

    # The running session goes on in the same container.
    assert shell.ask("after") == container
    # New connections: the old key is refused, the new one accepted; debug lines appear.
    refused = alice.ssh("true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
    assert login_then_count_debug(scn, gw, stranger) > 0, "no debug line at level debug"
    newer = Shell(scn, stranger)
    new_container = newer.ask("new")
    assert h.container_labels(container_id(scn, new_container)).get("sshpod-reloaded") == "yes"
    assert "sshpod-reloaded" not in h.container_labels(container_id(scn, container))
    newer.close()

    # Back to notice: debug lines stop.
    scn.write_config(scn.config({
        "log": {"level": "notice", "format": "ljson"},
        "auth": {"publicKey": {"authorizedKeys": {"file": str(new_keys / "%u")}}},
        "docker": {"execution": {"container": {"labels": labels}}},
    }), config_path.name)
    outcome, _ = reload_with(trigger, gw, control)
    assert outcome["details"]["sections"] == "log", outcome
    before = count(gw, DEBUG_LINE)
    assert login_then_count_debug(scn, gw, stranger) == before, "debug lines after going back to notice"

    assert shell.ask("last") == container
    # Still the container it started with.
    container_id(scn, container)
    shell.close()


def test_invalid_file_and_restart_settings_are_refused(scn):
    gw, config_path, control = start(scn, {"log": {"level": "notice", "format": "ljson"}})
    good = config_path.read_text()
    reload = ["--control-socket", str(control), "reload"]

    # An invalid file: the errors of check-config, exit status 2, the old configuration serves.
    config_path.write_text(good + "ssh2:\n  listen: nowhere\n")
    checked = h.run_sshpod(["--config", str(config_path), "check-config"])
    assert checked.returncode == 2, checked
    result = h.run_sshpod(reload)
    assert result.returncode == 2, result
    first, *errors = result.stdout.splitlines()
    assert first == "refused: the configuration file is invalid; the old configuration stays", result.stdout
    assert errors == checked.stderr.strip().splitlines(), (errors, checked.stderr)
    assert re.match(rf"{re.escape(str(config_path))}:\d+:1: key `ssh2`: unknown key", errors[0]), errors
    # The reload's answer can come before its log line is read from sshpod's output.
    refusal = h.wait_until(lambda: [r for r in records(gw) if r["code"] == "CORE_CONFIG_ERROR"], 30,
                           "the refusal in the log")
    assert len(refusal) == 1 and "key `ssh2`" in refusal[0]["details"]["errors"], refusal
    assert scn.client(gw).ssh("true").returncode == 0

    # A new listening address needs a restart: refused with the key named, whatever else changed.
    moved = scn.config({"log": {"level": "debug", "format": "ljson"}})
    moved["ssh"]["listen"] = f"127.0.0.1:{h.free_port()}"
    scn.write_config(moved, config_path.name)
    result = h.run_sshpod(reload)
    assert (result.returncode, result.stdout) == (
        1, "refused: a restart is needed to change ssh.listen; the old configuration stays\n"), result
    refusal = h.wait_until(lambda: [r for r in records(gw) if r["code"] == "SSHPOD_RELOAD_NEEDS_RESTART"], 30,
                           "the refusal in the log")
    assert refusal[-1]["details"]["keys"] == "ssh.listen", refusal
    assert refusal[-1]["level"] == "error"
    # The old configuration stays whole: the level did not change either.
    debug_lines = count(gw, DEBUG_LINE)
    assert login_then_count_debug(scn, gw, scn.client(gw)) == debug_lines

    # SIGHUP refuses the same way.
    config_path.write_text(good + "ssh2: {}\n")
    outcome, _ = reload_with("sighup", gw, control)
    assert outcome["code"] == "CORE_CONFIG_ERROR" and "key `ssh2`" in outcome["details"]["errors"], outcome
    # And the unchanged file is accepted as such.
    config_path.write_text(good)
    assert h.run_sshpod(reload).stdout == "unchanged: the configuration file has no changes\n"


def test_ljson_lines_have_containerssh_members_and_known_codes(scn):
    gw, _, _ = start(scn, {"log": {"level": "debug", "format": "ljson"}})
    result = scn.client(gw).ssh("echo hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result
    refused = scn.password_client(gw, password="not the password").ssh("true")
    assert refused.returncode == 255, refused
    h.wait_until(lambda: count(gw, "connection closed") >= 2, 30, "both connections closed")

    lines = records(gw)
    known = documented_codes()
    assert len(known) > 40, known
    for line in lines:
        assert list(line) == LJSON_MEMBERS, line
        assert line["level"] in LEVELS, line
        assert line["code"] in known, line
        assert isinstance(line["details"], dict), line
    codes = [line["code"] for line in lines]
    for code in ("SSH_AVAILABLE", "SSH_CONNECTED", "AUTH_SUCCESSFUL", "AUTH_FAILED", "SSHPOD_CONTAINER_READY",
                 "SSH_EXIT", "SSH_DISCONNECTED"):
        assert code in codes, (code, codes)
    accepted = next(line for line in lines if line["code"] == "AUTH_SUCCESSFUL")
    details = accepted["details"]
    assert re.fullmatch(r"[0-9a-f]{32}", details["connectionId"]), details
    assert details["remoteAddr"].startswith("127.0.0.1:"), details
    assert details["user"] == "alice" and details["method"] == "publickey", details
    assert accepted["level"] == "notice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", accepted["timestamp"]), accepted


def test_log_file_is_reopened_after_rotation(scn):
    log_file = scn.tmp / "sshpod.log"
    gw, _, _ = start(scn, {"log": {"level": "notice", "format": "ljson", "destination": "file",
                                   "file": str(log_file)}}, wait=False)

    def file_records(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def listening() -> str | None:
        return next((r["message"] for r in file_records(log_file) if r["code"] == "SSH_AVAILABLE"), None)

    message = h.wait_until(listening, h.STARTUP_TIMEOUT, "the listening line in the log file")
    gw.port = int(message.rsplit(":", 1)[1])
    assert records(gw) == [], "lines on standard output with destination: file"

    # As logrotate does: rename, then signal.
    rotated = scn.tmp / "sshpod.log.1"
    log_file.rename(rotated)
    gw.signal(signal.SIGHUP)
    h.wait_until(lambda: any(r["code"] == "SSHPOD_RELOAD_UNCHANGED" for r in file_records(log_file)), 30,
                 "the reload's line in a new log file")
    assert scn.client(gw).ssh("true").returncode == 0
    h.wait_until(lambda: any(r["code"] == "AUTH_SUCCESSFUL" for r in file_records(log_file)), 10,
                 "the login in the new file")

    old = [r["code"] for r in file_records(rotated)]
    new = [r["code"] for r in file_records(log_file)]
    assert "SSH_AVAILABLE" in old and "SSHPOD_RELOAD_REQUESTED" in old, old
    assert "SSH_AVAILABLE" not in new and "AUTH_SUCCESSFUL" not in old, (old, new)


def syslog_config(destination: str, log_format: str) -> dict:
    return {"log": {"level": "notice", "format": log_format, "destination": "syslog",
                    "syslog": {"destination": destination, "facility": "local3", "tag": "sshpod-e2e",
                               "pid": True}}}


SYSLOG_RE = re.compile(r"<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ([^:\[]+)\[(\d+)\]: (.*)", re.DOTALL)


class Receiver:
    """Reads syslog datagrams from a socket the test owns."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.settimeout(0.2)
        self.messages: list[re.Match] = []

    def poll(self) -> list[re.Match]:
        while True:
            try:
                datagram = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return self.messages
            match = SYSLOG_RE.fullmatch(datagram.decode())
            assert match, datagram
            self.messages.append(match)

    def wait_for(self, code: str, timeout: float = 30) -> re.Match:
        def found():
            return next((m for m in self.poll() if message_code(m.group(5)) == code), None)
        return h.wait_until(found, timeout, f"a syslog message with code {code}")


def message_code(text: str) -> str | None:
    """The code of a syslog message: an ljson object's member, or a text line's field."""
    if text.startswith("{"):
        return json.loads(text)["code"]
    match = re.search(r' code="([A-Z0-9_]+)"', text)
    return match.group(1) if match else None


def test_syslog_text_lines_leave_time_and_level_to_the_header(scn):
    path = scn.sock_dir / "log"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    scn.finalizers.append(sock.close)
    receiver = Receiver(sock)
    gw, _, _ = start(scn, syslog_config(str(path), "text"), wait=False)
    listening = receiver.wait_for("SSH_AVAILABLE", h.STARTUP_TIMEOUT)
    text = listening.group(5)
    assert re.fullmatch(r'sshpod::commands::run: listening on 127\.0\.0\.1:\d+ code="SSH_AVAILABLE"', text), text
    assert int(listening.group(1)) == 19 * 8 + 5


@pytest.mark.parametrize("transport", ["unix", "udp"])
def test_syslog_messages_reach_a_receiver(scn, transport):
    if transport == "unix":
        path = scn.sock_dir / "log"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        destination = str(path)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        destination = f"udp://127.0.0.1:{sock.getsockname()[1]}"
    scn.finalizers.append(sock.close)
    receiver = Receiver(sock)
    gw, _, _ = start(scn, syslog_config(destination, "ljson"), wait=False)

    listening = receiver.wait_for("SSH_AVAILABLE", h.STARTUP_TIMEOUT)
    body = json.loads(listening.group(5))
    gw.port = int(body["message"].rsplit(":", 1)[1])
    local3, notice = 19, 5
    assert int(listening.group(1)) == local3 * 8 + notice
    assert listening.group(3) == "sshpod-e2e"
    assert int(listening.group(4)) == gw.proc.pid
    # The header has the time and level: the JSON has the other three members.
    assert list(body) == ["code", "message", "details"], body

    assert scn.client(gw).ssh("true").returncode == 0
    accepted = json.loads(receiver.wait_for("AUTH_SUCCESSFUL").group(5))
    assert accepted["details"]["user"] == "alice", accepted

    if transport == "unix":
        # The syslog daemon goes away: sessions go on; the loss is said on standard error.
        sock.close()
        path.unlink()
        result = scn.client(gw).ssh("echo still")
        assert (result.returncode, result.stdout) == (0, "still\n"), result
        gw.wait_for_log(r"stderr\| sshpod: LOG_WRITE_FAILED: cannot write to syslog: .* log lines dropped so far", 10)

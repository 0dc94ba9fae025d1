"""Sessions: interactive shells with a terminal, commands, exit codes, environment, streams,
signals, ControlMaster multiplexing in both execution modes, and images that have nothing but
/bin/sh."""

from __future__ import annotations

import asyncio
import io
import re

import asyncssh
import pexpect

import harness as h

PROMPT = r"[#$] "
SESSION_MODE = {"docker": {"execution": {"mode": "session"}}}


def spawn(client: h.Client, *remote: str, opts=(), dimensions=(24, 80), term="xterm-256color") -> pexpect.spawn:
    args = client.ssh_args(*remote, opts=opts)
    child = pexpect.spawn(args[0], args[1:], env=client._env({"TERM": term}), dimensions=dimensions,
                          encoding="utf-8", codec_errors="replace", timeout=60)
    child.logfile_read = io.StringIO()
    return child


def transcript(child: pexpect.spawn) -> str:
    return f"terminal transcript:\n{child.logfile_read.getvalue()[-3000:]}"


def ask_size(child: pexpect.spawn) -> str:
    child.sendline("stty size")
    child.expect(r"(?<![0-9])([0-9]+ [0-9]+)\r\n")
    return child.match.group(1)


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    return child.exitstatus


def test_interactive_shell_gets_terminal_type_and_size(scn):
    gw = scn.start()
    child = spawn(scn.client(gw), opts=["-tt"], dimensions=(24, 80))
    try:
        child.expect(PROMPT)
        child.sendline("echo TERM=$TERM.")
        child.expect(r"TERM=xterm-256color\.")
        assert ask_size(child) == "24 80", transcript(child)
        child.setwinsize(40, 132)
        # The window change travels apart from the keystrokes: ask until the shell has it.
        h.wait_until(lambda: ask_size(child) == "40 132", 30, "stty size to report 40 132 after a resize")
        child.sendline("exit 0")
        status = finish(child)
    except (pexpect.TIMEOUT, pexpect.EOF, h.WaitTimeout) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    assert status == 0, transcript(child)


def test_full_screen_program_runs_and_quits(scn):
    gw = scn.start()
    child = spawn(scn.client(gw), "top", opts=["-t"])
    try:
        child.expect("load average")
        child.send("q")
        status = finish(child)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    assert status == 0, transcript(child)


def test_command_keeps_stdout_and_stderr_apart_and_returns_exit_code(scn):
    gw = scn.start()
    result = scn.client(gw).ssh("echo out; echo err >&2; exit 3")
    assert result.returncode == 3, result
    assert result.stdout == "out\n", result
    assert result.stderr == "err\n", result


def test_end_of_input_reaches_the_command(scn):
    gw = scn.start()
    result = scn.client(gw).ssh("cat", input="x\n")
    assert result.returncode == 0, result
    assert result.stdout == "x\n", result


def test_setenv_reaches_the_command(scn):
    gw = scn.start({"ssh": {"acceptEnv": ["FOO"]}})
    result = scn.client(gw).ssh('echo "FOO=$FOO BAR=$BAR"', opts=["-o", "SetEnv=FOO=bar BAR=baz"])
    assert result.returncode == 0, result
    assert result.stdout == "FOO=bar BAR=\n", result


def test_sendenv_reaches_the_command(scn):
    gw = scn.start()
    result = scn.client(gw).ssh('echo "LC=$LC_SSHPOD_TEST"', opts=["-o", "SendEnv=LC_SSHPOD_TEST"],
                                env={"LC_SSHPOD_TEST": "sent-by-client"})
    assert result.returncode == 0, result
    assert result.stdout == "LC=sent-by-client\n", result


def test_command_killed_by_a_signal_fails(scn):
    gw = scn.start()
    result = scn.client(gw).ssh("kill -9 $$")
    assert result.returncode != 0, result


def test_controlmaster_sessions_share_the_container_in_connection_mode(scn):
    gw = scn.start()
    client = scn.client(gw)
    cm = h.control_options(scn.control_path(client))
    first = client.ssh("echo shared > /tmp/sshpod-cm-test && hostname", opts=cm)
    assert first.returncode == 0, first
    second = client.ssh("cat /tmp/sshpod-cm-test && hostname", opts=cm)
    assert second.returncode == 0, second
    assert second.stdout == "shared\n" + first.stdout, (first, second)
    assert len(h.containers(scn.run_id)) == 1


def test_controlmaster_sessions_are_isolated_in_session_mode(scn):
    gw = scn.start(SESSION_MODE)
    client = scn.client(gw)
    cm = h.control_options(scn.control_path(client))
    first = client.ssh("echo private > /tmp/sshpod-cm-test && hostname", opts=cm)
    assert first.returncode == 0, first
    second = client.ssh("if [ -e /tmp/sshpod-cm-test ]; then echo present; else echo absent; fi; hostname",
                        opts=cm)
    assert second.returncode == 0, second
    lines = second.stdout.splitlines()
    assert lines[0] == "absent", second
    assert lines[1] != first.stdout.strip(), (first, second)


def test_concurrent_sessions_of_one_connection_each_get_a_container_in_session_mode(scn):
    """A shell open while sftp or a second command runs (ControlMaster, VS Code): in session
    mode every session is a container of its own, at the same time."""
    gw = scn.start(SESSION_MODE)
    client = scn.client(gw)
    cm = h.control_options(scn.control_path(client))
    holder = scn.track(client.popen("echo first; exec sleep 1000", opts=cm))
    assert h.read_line(holder.stdout, h.CONTAINER_TIMEOUT) == b"first\n"
    second = client.ssh("echo second", opts=cm)
    assert (second.returncode, second.stdout) == (0, "second\n"), second
    holder.kill()


def test_session_mode_runs_commands_and_returns_exit_code(scn):
    gw = scn.start(SESSION_MODE)
    result = scn.client(gw).ssh("echo out; echo err >&2; exit 4")
    assert (result.returncode, result.stdout, result.stderr) == (4, "out\n", "err\n"), result


def test_image_with_only_bin_sh(scn, sh_only_image):
    gw = scn.start({"docker": {"execution": {"container": {"image": sh_only_image}}}, "ssh": {"acceptEnv": ["FOO"]}})
    client = scn.client(gw)

    result = client.ssh("echo hello from sh")
    assert (result.returncode, result.stdout) == (0, "hello from sh\n"), result

    result = client.ssh("exit 5")
    assert result.returncode == 5, result

    result = client.ssh('echo "FOO=$FOO"', opts=["-o", "SetEnv=FOO=bar"])
    assert (result.returncode, result.stdout) == (0, "FOO=bar\n"), result

    child = spawn(client, opts=["-tt"])
    try:
        child.expect(PROMPT)
        child.sendline('[ -t 0 ] && echo "TTY=$((6*7))"')
        child.expect(r"TTY=42")
        child.sendline("exit")
        status = finish(child)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        raise AssertionError(f"{exc}\n{transcript(child)}") from None
    assert status == 0, transcript(child)


def test_containers_carry_sshpod_labels(scn):
    gw = scn.start()
    client = scn.client(gw)
    cm = h.control_options(scn.control_path(client))
    result = client.ssh("true", opts=cm)
    assert result.returncode == 0, result
    (container,) = h.containers(scn.run_id)
    labels = h.container_labels(container)
    for key in ("sshpod.instance", "sshpod.connection", "sshpod.user"):
        assert key in labels, labels
    assert labels["sshpod.user"] == "alice", labels
    assert labels[h.TEST_LABEL] == scn.run_id, labels
    assert re.fullmatch(r"\S+", labels["sshpod.connection"]), labels


# Signals: OpenSSH's client cannot send them, asyncssh can.


def run_async(coro, timeout: float = 100):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def asyncssh_connect(scn, gw):
    return asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey")


def test_signal_reaches_the_command(scn):
    gw = scn.start()

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            proc = await conn.create_process(
                "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done")
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line == "ready\n", line
            proc.send_signal("TERM")
            output = await asyncio.wait_for(proc.stdout.read(), 60)
            result = await asyncio.wait_for(proc.wait(), 60)
            return output, result

    output, result = run_async(scenario())
    assert "got TERM" in output, (output, result)
    assert result.exit_status == 7, (result.exit_status, result.exit_signal, result.stderr)


def test_kill_signal_ends_the_command(scn):
    gw = scn.start()

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            proc = await conn.create_process("echo ready; exec sleep 100")
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line == "ready\n", line
            proc.send_signal("KILL")
            return await asyncio.wait_for(proc.wait(), 60)

    result = run_async(scenario())
    assert result.exit_signal is not None and result.exit_signal[0] == "KILL", \
        (result.exit_status, result.exit_signal)


def test_a_command_ended_by_a_signal_it_was_sent_is_reported_as_that_signal_every_time(scn):
    """The process dies of the signal, and its exit can be read, before the `kill` that sent it
    reports back: the exit must still be told as `exit-signal`, not as the shell's 128+N."""
    gw = scn.start()

    async def scenario():
        outcomes = []
        async with asyncssh_connect(scn, gw) as conn:
            for signal_name in ["TERM"] * 8 + ["INT", "HUP"]:
                proc = await conn.create_process("echo ready; exec sleep 100")
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert line == "ready\n", line
                proc.send_signal(signal_name)
                result = await asyncio.wait_for(proc.wait(), 60)
                outcomes.append((signal_name, result.exit_signal and result.exit_signal[0], result.exit_status))
        return outcomes

    outcomes = run_async(scenario(), timeout=200)
    assert all(sent == got for sent, got, _ in outcomes), outcomes

"""Exit signals reported truly, on Docker and on kube-sim: a process that dies of a signal sshpod
delivered ends with `exit-signal` every time (with and without a terminal), while a process that
handles the signal and exits, or exits 128+N by itself, ends with its `exit-status`. The
container APIs report both as the same number, so these tests repeat the signal enough times
that a race between the signal's delivery and the exit's read cannot pass."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from test_kubernetes import kube, ks  # noqa: F401  (fixtures)

# Five rounds of every signal an SSH client can send that ends an untrapped `sleep`: twenty
# processes, where the old race lost seven in ten.
SIGNALS = ["TERM", "INT", "KILL", "HUP"] * 5
PTY_SIGNALS = ["TERM", "INT", "KILL", "HUP"] * 2


@pytest.fixture(params=["docker", "kube-sim"])
def gateway(request, scn):
    """A gateway on each backend."""
    if request.param == "docker":
        return scn.start()
    return request.getfixturevalue("kube")()


def connect(scn, gw):
    return asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey")


async def ready(proc) -> None:
    """Waits for the command's `ready` line: the program runs, its signal handlers in place."""
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.strip() == "ready", line


async def signalled(conn, command: str, signal_name: str, pty: bool):
    """Runs `command` until it says ready, sends it `signal_name`, and returns how it ended."""
    term = {"term_type": "xterm"} if pty else {}
    proc = await conn.create_process(command, **term)
    await ready(proc)
    proc.send_signal(signal_name)
    return await asyncio.wait_for(proc.wait(), 60)


def ending(result) -> tuple[str | None, int | None]:
    signal_name = result.exit_signal[0] if result.exit_signal else None
    return signal_name, None if signal_name else result.exit_status


def run(coro, timeout: float = 400):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.timeout(600)
def test_a_process_killed_by_a_signal_sshpod_delivered_ends_with_that_signal_every_time(scn, gateway):
    async def scenario():
        outcomes = []
        async with connect(scn, gateway) as conn:
            for name in SIGNALS:
                result = await signalled(conn, "echo ready; exec sleep 100", name, pty=False)
                outcomes.append((name, *ending(result)))
            for name in PTY_SIGNALS:
                result = await signalled(conn, "echo ready; exec sleep 100", name, pty=True)
                outcomes.append((f"pty {name}", *ending(result)))
        return outcomes

    outcomes = run(scenario())
    wrong = [o for o in outcomes if o[0].split()[-1] != o[1]]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} not ended by the signal sent: {wrong}"


class Ending(asyncssh.SSHClientSession):
    """Tells when the command says ready and when its end is reported, whether or not its
    output has ended (a child that outlives it may hold its output open, as under sshd)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.ended = loop.create_future()

    def data_received(self, data, datatype) -> None:
        if "ready" in data and not self.ready.done():
            self.ready.set_result(None)

    def exit_status_received(self, status) -> None:
        if not self.ended.done():
            self.ended.set_result((None, status))

    def exit_signal_received(self, signal, core_dumped, msg, lang) -> None:
        if not self.ended.done():
            self.ended.set_result((signal, None))


def test_a_shell_running_a_command_dies_of_the_signal_too(scn, gateway):
    """The untrapped command need not be `exec`ed: the signal reaches the shell that waits
    for it, which dies of it; the `sleep` it leaves holds the output open, but the end is
    reported at once."""
    async def scenario():
        ends = []
        async with connect(scn, gateway) as conn:
            for pty in (False, True):
                term = {"term_type": "xterm"} if pty else {}
                channel, session = await conn.create_session(Ending, "echo ready; sleep 100; echo after", **term)
                await asyncio.wait_for(session.ready, 60)
                channel.send_signal("TERM")
                ends.append(await asyncio.wait_for(session.ended, 60))
                channel.close()
        return ends

    assert run(scenario()) == [("TERM", None), ("TERM", None)]


def test_a_process_that_handles_the_signal_ends_with_its_own_exit_status(scn, gateway):
    trapped = "trap 'exit 3' TERM; echo ready; while :; do sleep 0.1; done"

    async def scenario():
        async with connect(scn, gateway) as conn:
            return [ending(await signalled(conn, trapped, "TERM", pty)) for pty in (False, True)]

    assert run(scenario()) == [(None, 3), (None, 3)]


def test_an_exit_status_of_128_plus_n_without_a_signal_is_an_exit_status(scn, gateway):
    async def scenario():
        async with connect(scn, gateway) as conn:
            ends = []
            for pty in (False, True):
                term = {"term_type": "xterm"} if pty else {}
                for command in ("exit 143", "exit 137"):
                    ends.append(ending(await asyncio.wait_for(conn.run(command, **term), 60)))
            return ends

    assert run(scenario()) == [(None, 143), (None, 137)] * 2


def test_openssh_sees_an_exit_status_of_143_as_an_exit_status(scn, gateway):
    """OpenSSH cannot send a signal; what it shows of an `exit 143` is the status, with and
    without a terminal, never `Killed by signal`."""
    client = scn.client(gateway)
    for opts in ([], ["-tt"]):
        result = client.ssh("exit 143", opts=opts)
        assert result.returncode == 143, result
        assert "Killed by signal" not in result.stderr, result


def test_a_command_that_leaves_a_child_behind_ends_when_it_exits(scn, gateway):
    """`ssh host 'server &'`: the child holds the command's output open, but the session ends
    with the command (as the engine ends its output), with the command's status."""
    result = scn.client(gateway).ssh("sleep 300 & echo started; exit 5", timeout=60)
    assert (result.returncode, result.stdout) == (5, "started\n"), result

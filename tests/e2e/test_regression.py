"""Behaviour that once broke elsewhere and must not break here."""

from __future__ import annotations

import harness as h


def test_terminal_output_starting_with_low_bytes_arrives_intact(scn):
    """Docker's exec stream is raw with a TTY; a client library that guesses the framing from
    the first byte mistakes output starting with 0x00-0x02 for a frame header."""
    gw = scn.start()
    result = scn.client(gw).ssh(r"printf '\001\002\000after'", opts=["-tt"])
    assert result.returncode == 0, result
    assert b"\x01\x02\x00after" in result.stdout_bytes, result


def test_binary_output_without_terminal_arrives_intact(scn):
    gw = scn.start()
    result = scn.client(gw).ssh(r"printf '\000\001\002\377end'; printf '\002err' >&2")
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"\x00\x01\x02\xffend", result
    assert result.stderr_bytes.endswith(b"\x02err"), result


def test_unreachable_engine_stops_the_server_with_a_clear_error(scn):
    config = scn.write_config(scn.config({"docker": {"connection": {"host": "unix:///nonexistent/docker.sock"}}}))
    result = h.run_sshpod(["--config", str(config)])
    assert result.returncode != 0, result
    assert "Docker engine" in result.stderr and "/nonexistent/docker.sock" in result.stderr, result

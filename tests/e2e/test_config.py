"""Configuration: `sshpod check-config`, errors that point at the line and column of a mistake,
JSON configuration, refusing to start with a bad file, and host key generation."""

from __future__ import annotations

import re
import stat
import subprocess

import harness as h

TYPO_CONFIG = """\
# sshpod configuration with a typo on line 3
ssh:
  lisen: 127.0.0.1:0
  hostkeys:
    - {hostkey}
auth:
  publicKey:
    method: authorizedKeys
    authorizedKeys:
      file: {tmp}/authorized_keys/%u
docker:
  execution:
    container:
      image: sshpod-guest:latest
"""


def write_typo_config(scn):
    path = scn.tmp / "config.yaml"
    path.write_text(TYPO_CONFIG.format(hostkey=scn.host_key, tmp=scn.tmp))
    return path


def test_check_config_prints_the_effective_configuration(scn):
    path = scn.write_config(scn.config({"kubernetes": {"connection": {"bearerToken": "tok-3141"}}}))
    result = h.run_sshpod(["check-config", "--config", str(path)])
    assert result.returncode == 0, result
    assert "listen" in result.stdout, result
    assert "127.0.0.1:0" in result.stdout, result
    assert "tok-3141" not in result.stdout and "<secret>" in result.stdout, result.stdout
    shown = h.run_sshpod(["check-config", "--show-secrets", "--config", str(path)])
    assert "tok-3141" in shown.stdout, shown
    # What --show-secrets prints is a configuration that loads again.
    again = scn.tmp / "printed.yaml"
    again.write_text(shown.stdout)
    assert h.run_sshpod(["check-config", "--config", str(again)]).returncode == 0


def test_check_config_points_at_an_unknown_key(scn):
    path = write_typo_config(scn)
    result = h.run_sshpod(["check-config", "--config", str(path)])
    assert result.returncode != 0, result
    assert "config.yaml:3:3: key `ssh.lisen`" in result.stderr, result
    assert "did you mean `listen`" in result.stderr, result


def test_server_refuses_to_start_with_a_bad_config(scn):
    path = write_typo_config(scn)
    gw = scn.start(config_path=path, wait=False)
    status = gw.wait_exit(60)
    gw.wait_drained()
    assert status != 0, gw.log
    assert "ssh.lisen" in gw.log, gw.log
    assert not h.LISTENING_RE.search(gw.log), gw.log


def test_json_config(scn):
    path = scn.write_config(scn.config(), "config.json")
    gw = scn.start(config_path=path)
    result = scn.client(gw).ssh("echo json")
    assert (result.returncode, result.stdout) == (0, "json\n"), result


def public_key_blob(line: str) -> str:
    """The base64 key of an OpenSSH public key or known_hosts line."""
    fields = line.split()
    index = next(i for i, field in enumerate(fields) if field.startswith("ssh-"))
    return fields[index + 1]


def served_host_key(port: int) -> str:
    scan = subprocess.run(["ssh-keyscan", "-T", "30", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    lines = [line for line in scan.stdout.splitlines() if line and not line.startswith("#")]
    assert lines, scan
    return public_key_blob(lines[0])


def test_missing_host_key_is_generated_and_kept(scn):
    key_dir = scn.tmp / "etc"
    key_dir.mkdir()
    key = key_dir / "ssh_host_ed25519_key"
    path = scn.write_config(scn.config({"ssh": {"hostkeys": [str(key)]}}))
    config_bytes = path.read_bytes()

    gw = scn.start(config_path=path)
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, oct(key.stat().st_mode)
    listing = subprocess.run(["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True).stdout
    assert listing.rstrip().endswith("(ED25519)"), listing
    fingerprint = re.search(r"SHA256:[A-Za-z0-9+/]+", listing).group(0)
    gw.wait_for_log(re.escape(fingerprint), 10, f"the host key fingerprint {fingerprint}")
    assert path.read_bytes() == config_bytes, "the configuration file was modified"

    public = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert served_host_key(gw.port) == public_key_blob(public)

    # A restart serves the same key: clients do not see a new host identity.
    key_bytes = key.read_bytes()
    assert gw.stop() == 0, gw.log
    again = scn.start(config_path=path, name="restarted")
    assert key.read_bytes() == key_bytes
    assert served_host_key(again.port) == public_key_blob(public)


def test_docker_api_fields_written_as_containerssh_saves_them_reach_the_container(scn):
    """ContainerSSH passes `docker.execution.host` and `container` to Docker's API as they are:
    fields sshpod has no key of its own for (here `oomscoreadj`, `memoryreservation`, a
    healthcheck), written in lower case as ContainerSSH saves them, end up on the container."""
    gw = scn.start({"docker": {"execution": {
        "host": {"oomscoreadj": 321, "memoryreservation": 64 * 1024 * 1024},
        "container": {"healthcheck": {"test": ["NONE"]}, "stopsignal": "SIGUSR1"},
    }}})
    proc = scn.track(scn.client(gw).popen("echo started; exec sleep 1000"))
    assert h.read_line(proc.stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    [container] = h.wait_containers(scn.run_id, 1)
    shown = h.docker("inspect", "--format",
                     "{{.HostConfig.OomScoreAdj}} {{.HostConfig.MemoryReservation}} "
                     "{{json .Config.Healthcheck.Test}} {{.Config.StopSignal}}", container).stdout.decode().split()
    assert shown == ["321", str(64 * 1024 * 1024), '["NONE"]', "SIGUSR1"], shown
    proc.kill()
    proc.wait()
    h.wait_no_containers(scn.run_id)

"""Fixtures of the kube-sim suite: one kube-sim per session (started on a free port, ready when
it prints its ready line), stopped with SIGTERM at the end, which must leave no container or
volume of its instance behind. Tests that need their own instance use `fresh_kube_sim`."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

import kubesim


@pytest.fixture(scope="session", autouse=True)
def kube_sim_preflight() -> None:
    missing = [t for t in ("docker", "kubectl") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)}", pytrace=False)
    if not kubesim.kube_sim_bin().is_file():
        pytest.fail(f"kube-sim not found at {kubesim.kube_sim_bin()}: run `cargo build -p kube-sim` "
                    "or set KUBE_SIM_BIN", pytrace=False)
    image = subprocess.run(["docker", "image", "inspect", kubesim.GUEST_IMAGE], capture_output=True)
    if image.returncode != 0:
        pytest.fail(f"image {kubesim.GUEST_IMAGE} is missing: run images/guest/build.sh", pytrace=False)


def _stop_and_check(ks: kubesim.KubeSim) -> None:
    status = ks.stop()
    left = kubesim.docker_ids("container", ks.instance) + kubesim.docker_ids("volume", ks.instance)
    assert status == 0, f"kube-sim exited with {status}:\n{ks.logs()}"
    assert not left, f"kube-sim left behind {left}"
    assert not kubesim.state_dir(ks.instance).exists(), f"kube-sim left {kubesim.state_dir(ks.instance)} behind"


@pytest.fixture(scope="session")
def ks(tmp_path_factory: pytest.TempPathFactory):
    sim = kubesim.KubeSim(tmp_path_factory.mktemp("kube-sim"))
    yield sim
    _stop_and_check(sim)


@pytest.fixture
def fresh_kube_sim(tmp_path):
    """A factory for a private kube-sim (extra command-line arguments allowed)."""
    started = []

    def start(*extra: str) -> kubesim.KubeSim:
        directory = tmp_path / f"ks{len(started)}"
        directory.mkdir()
        sim = kubesim.KubeSim(directory, *extra)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        _stop_and_check(sim)


@pytest.fixture
def name() -> str:
    """A unique pod name for one test."""
    return f"t-{uuid.uuid4().hex[:8]}"

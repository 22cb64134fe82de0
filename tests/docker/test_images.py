"""The images as built by `pacsim images build`: non-root, healthchecked, offline-built."""

from __future__ import annotations

import json

import pytest

from simulators.cli import main
from tests.helpers import require_docker

from simulators.runtime.engine import DEFAULT_ORTHANC_IMAGE, DEFAULT_PACSIM_IMAGE
from simulators.runtime.images import ORTHANC_PLUGIN, orthanc_image_config


def test_pacsim_image_runs_as_non_root_with_a_healthcheck(docker):
    config = docker.images.get(DEFAULT_PACSIM_IMAGE).attrs["Config"]
    assert config["User"] == "pacsim"
    assert config["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "simulators.runtime.health"]
    assert config["Entrypoint"] == ["pacsim"]
    assert {"11112/tcp", "2575/tcp"} <= set(config["ExposedPorts"])


def test_pacsim_image_has_pacsim_and_no_pip(docker):
    output = docker.containers.run(
        DEFAULT_PACSIM_IMAGE, entrypoint=["python3", "-c"],
        command=["import importlib.util as u, os, simulators; "
                 "print(os.getuid(), u.find_spec('pip') is None, u.find_spec('pynetdicom') is not None)"],
        remove=True, labels={"org.pacsim.run": "dockertest-image"})
    uid, no_pip, has_pynetdicom = output.decode().split()
    assert uid == "10001" and no_pip == "True" and has_pynetdicom == "True"


def test_orthanc_image_is_non_root_and_carries_the_generated_config(docker):
    config = docker.images.get(DEFAULT_ORTHANC_IMAGE).attrs["Config"]
    assert config["User"] == "orthanc"
    assert "curl" in config["Healthcheck"]["Test"]
    inside = docker.containers.run(DEFAULT_ORTHANC_IMAGE, command=["cat", "/etc/orthanc/orthanc.json"],
                                   remove=True, labels={"org.pacsim.run": "dockertest-image"})
    baked = json.loads(inside)
    assert baked == orthanc_image_config()
    assert baked["Plugins"] == [ORTHANC_PLUGIN] and "DicomModalities" not in baked


def test_image_sizes_are_reported(docker, capsys):
    sizes = {tag: docker.images.get(tag).attrs["Size"] for tag in
             (DEFAULT_PACSIM_IMAGE, DEFAULT_ORTHANC_IMAGE)}
    with capsys.disabled():
        print("\nimage sizes: " + ", ".join(f"{t} {s / 1e6:.0f} MB" for t, s in sizes.items()))
    assert all(0 < size < 1_000_000_000 for size in sizes.values())



@pytest.mark.docker
def test_a_build_on_a_base_that_cannot_be_pulled_suggests_local_base(capsys):
    """Issue 18: offline, `pacsim images build` failed without naming the way out."""
    require_docker()
    # A base no registry has: the same failure as an unreachable registry (nothing to pull).
    code = main(["images", "build", "--only", "orthanc",
                 "--orthanc-base", "pacsim-test.invalid/no-such-base:0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "building pacsim/orthanc" in err or "failed" in err
    assert "hint:" in err and "pacsim images build --local-base" in err

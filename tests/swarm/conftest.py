"""Fixtures of the Swarm tests: a Docker engine, a one-node swarm, the images, the stack.

These tests need a Docker engine; ``.ci/run`` installs docker.io and
debootstrap and starts dockerd. Where no engine answers they are skipped,
saying why. Whatever they create they remove: the stack, its volume, the app
images, and the swarm if they initialised it. The stand-in base images stay,
tagged by a hash of their recipe, so that the next run need not build them.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest

from sharedsession.demo.processes import free_port
from tests.swarm.deployment import REPLICAS, Stack, new_stack
from tests.swarm.images import (
    DOCKER,
    BuildReport,
    DockerError,
    build_app_images,
    docker,
    ensure_standins,
)

STACK_NAME = "sharedsession-swarmtest"
# The app images' tag: the test's own, never the users' :latest.
APP_TAG = "swarmtest"
# What building the images cost, for the end of pytest's report.
BUILD_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if BUILD_NOTES:
        terminalreporter.write_sep("-", "swarm images")
        for note in BUILD_NOTES:
            terminalreporter.write_line(note)


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None."""
    if DOCKER is None:
        return "no docker command"
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=30)
    except (DockerError, subprocess.TimeoutExpired) as error:
        return f"no Docker engine answers ({str(error).strip().splitlines()[-1]})"
    return None


@pytest.fixture(scope="session")
def swarm_node() -> Iterator[None]:
    """A Docker engine that is a swarm manager; a swarm this fixture creates, it leaves."""
    problem = engine_problem()
    if problem:
        pytest.skip(f"{problem}: .ci/run installs docker.io and starts dockerd")
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}").split()
    created = state[0] == "inactive"
    # `swarm init` also makes this bridge, and `swarm leave` keeps it.
    had_gwbridge = "docker_gwbridge" in docker("network", "ls", "--format", "{{.Name}}").split()
    if created:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    elif state != ["active", "true"]:
        raise RuntimeError(f"this engine is in a swarm but not a manager of it ({state}): cannot deploy")
    yield
    if created:
        docker("swarm", "leave", "--force")
        if not had_gwbridge:
            docker("network", "rm", "docker_gwbridge")


@pytest.fixture(scope="session")
def swarm_images(swarm_node: None) -> Iterator[dict[str, str]]:
    """The images the stack runs, by stack variable: the stand-in base images
    (cached) and the two app images built on them (removed at the end)."""
    report = BuildReport()
    variables = ensure_standins(report)
    BUILD_NOTES.extend(f"built {tag} in {seconds:.0f} s" for tag, seconds in report.built.items())
    BUILD_NOTES.extend(f"cached: {tag}" for tag in report.cached)
    started = time.monotonic()
    apps: dict[str, str] = {}
    try:
        apps = build_app_images(variables["PYTHON_IMAGE"], APP_TAG)
        BUILD_NOTES.append(f"built {', '.join(apps.values())} in {time.monotonic() - started:.0f} s")
        yield {**variables, **apps}
    finally:
        for image in apps.values():
            with contextlib.suppress(DockerError):
                docker("image", "rm", image)


@pytest.fixture(scope="module")
def stack(swarm_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack, deployed, every service healthy, the balancer spreading requests over every app task."""
    work = tmp_path_factory.mktemp("swarm")
    deployed = new_stack(
        STACK_NAME,
        work,
        {"flask": free_port(), "starlette": free_port(), "django": free_port(), "all": free_port()},
        swarm_images,
    )
    deployed.remove()  # what a run that was killed may have left
    try:
        deployed.deploy()
        deployed.wait_converged("redis", 1)
        deployed.wait_converged("balancer", 1)
        flask = deployed.wait_converged("flask", REPLICAS)
        starlette = deployed.wait_converged("starlette", REPLICAS)
        django = deployed.wait_converged("django", REPLICAS)
        deployed.wait_balanced("flask", flask)
        deployed.wait_balanced("starlette", starlette)
        deployed.wait_balanced("django", django)
        deployed.wait_balanced("all", flask | starlette | django)
        yield deployed
    finally:
        deployed.remove()

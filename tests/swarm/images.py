"""The images the Swarm test runs: local stand-ins for the public base images,
and the two example apps built on them.

No image registry is reachable where CI runs, so ``python:3.12-slim``,
``redis:7.2-alpine`` and ``haproxy:2.8-alpine`` cannot be pulled. Each
stand-in is a Debian root file system made by ``debootstrap --variant=minbase``
from the mirror apt already uses, plus python3, redis-server or haproxy, turned
into an image by ``docker import``. They keep the public images' interfaces:
the same commands (``python``, ``pip``; ``redis-server``, ``redis-cli``;
``haproxy``), the same working directories and entrypoint behaviour, so the
stack file and the Dockerfiles run on them unchanged.

A stand-in is tagged with a hash of everything that built it and is built
only when that tag is missing: later runs reuse it, a changed recipe builds
a new one (and drops the old tags of that name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOCKER = shutil.which("docker")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The classic builder: the docker CLI here has no buildx plugin.
BUILD_ENV = {"DOCKER_BUILDKIT": "0"}
# Where the stand-in for python:3.12-slim keeps the CA bundle pip needs to reach
# the package index from inside a build (see host_pip_cert).
PIP_CERT_IN_IMAGE = "/etc/ssl/certs/pip-host-bundle.crt"


class DockerError(RuntimeError):
    """A docker command failed; the message carries its output."""


def docker(*args: str, timeout: float = 300, env: Mapping[str, str] | None = None) -> str:
    """Run ``docker ARGS``; its standard output, or DockerError with both outputs."""
    if DOCKER is None:
        raise DockerError("no docker command")
    done = subprocess.run(
        [DOCKER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise DockerError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout


def image_exists(tag: str) -> bool:
    try:
        docker("image", "inspect", "--format", "{{.Id}}", tag, timeout=60)
    except DockerError:
        return False
    return True


# -- stand-in base images --------------------------------------------------------------


@dataclass(frozen=True)
class StandIn:
    """How to build the stand-in for one public image."""

    name: str
    packages: tuple[str, ...]
    # Shell commands run in the new root (chroot) once the packages are in.
    setup: tuple[str, ...] = ()
    # Files to add: path in the image -> file on this machine.
    files: Mapping[str, Path] = field(default_factory=dict)
    # Dockerfile instructions on top of the root file system.
    changes: tuple[str, ...] = ()

    @property
    def repository(self) -> str:
        return f"sharedsession-standin-{self.name}"

    def recipe(self) -> str:
        """Everything that decides the image's content, as text (the tag hashes it)."""
        return json.dumps(
            {
                # This module: how the recipe is carried out.
                "builder": _digest(Path(__file__).read_bytes()),
                "suite": SUITE,
                "variant": "minbase",
                "packages": self.packages,
                "setup": self.setup,
                "files": {target: _digest(source.read_bytes()) for target, source in self.files.items()},
                "changes": self.changes,
            },
            sort_keys=True,
        )

    @property
    def tag(self) -> str:
        return f"{self.repository}:{_digest(self.recipe().encode())[:16]}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def host_pip_cert() -> Path | None:
    """The CA bundle pip is configured with on this machine (PIP_CERT, else `pip config`).

    Where HTTPS to the package index goes through an intercepting proxy, pip
    inside a build needs that bundle too.
    """
    configured = os.environ.get("PIP_CERT")
    if not configured:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
        )
        match = re.search(r"^\S*\.cert='([^']+)'$", done.stdout, re.M)
        configured = match.group(1) if match else None
    path = Path(configured) if configured else None
    return path if path is not None and path.is_file() else None


def standins() -> dict[str, StandIn]:
    """The three stand-ins, keyed by the stack variable that names each image."""
    pip_cert = host_pip_cert()
    python_files = {PIP_CERT_IN_IMAGE: pip_cert} if pip_cert else {}
    python_env = (f"ENV PIP_CERT={PIP_CERT_IN_IMAGE}",) if pip_cert else ()
    entrypoint = 'ENTRYPOINT ["docker-entrypoint.sh"]'
    return {
        "PYTHON_IMAGE": StandIn(
            name="python",
            packages=("python3", "python3-venv"),
            # A venv first on PATH: `python` and `pip` as in the official image,
            # and pip installs there (Debian's python3 refuses system-wide installs).
            setup=("python3 -m venv /opt/python", "/opt/python/bin/pip --version"),
            files=python_files,
            changes=(
                "ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                *python_env,
                'CMD ["python3"]',
            ),
        ),
        "REDIS_IMAGE": StandIn(
            name="redis",
            packages=("redis-server",),
            setup=("mkdir -p /data", "chown redis:redis /data"),
            files={"/usr/local/bin/docker-entrypoint.sh": HERE / "standins" / "redis-entrypoint.sh"},
            changes=("WORKDIR /data", "VOLUME /data", "EXPOSE 6379", entrypoint, 'CMD ["redis-server"]'),
        ),
        "HAPROXY_IMAGE": StandIn(
            name="haproxy",
            packages=("haproxy",),
            setup=("mkdir -p /usr/local/etc/haproxy",),
            files={"/usr/local/bin/docker-entrypoint.sh": HERE / "standins" / "haproxy-entrypoint.sh"},
            changes=(
                "WORKDIR /var/lib/haproxy",
                "USER haproxy",
                "STOPSIGNAL SIGUSR1",
                entrypoint,
                'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
            ),
        ),
    }


def debian_mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for block in re.split(r"\n\s*\n", text):
            if re.search(rf"^Suites:.*\b{SUITE}\b", block, re.M):
                uri = re.search(r"^URIs:\s*(\S+)", block, re.M)
                if uri and uri.group(1).rstrip("/").endswith("/debian"):
                    return uri.group(1)
            line = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+{SUITE}\s", block, re.M)
            if line:
                return line.group(1)
    return DEFAULT_MIRROR


def _as_root(argv: Sequence[str]) -> list[str]:
    return list(argv) if os.geteuid() == 0 else ["sudo", "-n", *argv]


def build_standin(standin: StandIn, work: Path, deb_cache: Path) -> float:
    """Build ``standin`` with debootstrap and docker import; the seconds it took."""
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise RuntimeError(f"building {standin.tag} needs debootstrap (.ci/run installs it)")
    started = time.monotonic()
    root = work / standin.name
    try:
        _run(
            _as_root(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(standin.packages)}",
                    f"--cache-dir={deb_cache}",
                    SUITE,
                    str(root),
                    debian_mirror(),
                ]
            ),
            timeout=1200,
        )
        for command in standin.setup:
            _run(_as_root(["chroot", str(root), "/bin/sh", "-ec", command]), timeout=300)
        for target, source in standin.files.items():
            _run(_as_root(["install", "-D", "-m", "0755", str(source), str(root) + target]), timeout=60)
        # Nothing a container needs: package lists and downloaded packages.
        _run(
            _as_root(
                ["sh", "-c", 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin', "sh", str(root)]
            ),
            timeout=60,
        )
        _import(root, standin)
    finally:
        _run(_as_root(["rm", "-rf", "--one-file-system", str(root)]), timeout=300)
    _drop_stale_tags(standin)
    return time.monotonic() - started


def _import(root: Path, standin: StandIn) -> None:
    """``docker import`` the root file system, then add the image settings with a build.

    (``docker import --change`` takes only some instructions: no STOPSIGNAL.)
    """
    assert DOCKER is not None
    rootfs = f"{standin.tag}-rootfs"
    tar = subprocess.Popen(
        _as_root(["tar", "-C", str(root), "--numeric-owner", "-c", "."]), stdout=subprocess.PIPE
    )
    try:
        done = subprocess.run(
            [DOCKER, "import", "-", rootfs],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait(60)
    if done.returncode != 0 or tar.returncode != 0:
        raise DockerError(
            f"docker import {rootfs}: exit {done.returncode}, tar {tar.returncode}: {done.stderr}"
        )
    dockerfile = "\n".join([f"FROM {rootfs}", *standin.changes, ""])
    try:
        done = subprocess.run(
            [DOCKER, "build", "--quiet", "-t", standin.tag, "-"],
            input=dockerfile,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **BUILD_ENV},
            check=False,
        )
        if done.returncode != 0:
            raise DockerError(f"docker build {standin.tag}: {done.stdout}{done.stderr}")
    finally:
        docker("image", "rm", rootfs, timeout=120)  # the tag only: the layer stays, under standin.tag


def _drop_stale_tags(standin: StandIn) -> None:
    """Remove the images earlier recipes of this stand-in left behind."""
    listed = docker("image", "ls", standin.repository, "--format", "{{.Repository}}:{{.Tag}}", timeout=60)
    for tag in listed.split():
        if tag != standin.tag:
            with contextlib.suppress(DockerError):  # still in use: the next build tries again
                docker("image", "rm", tag, timeout=120)


def _run(argv: Sequence[str], timeout: float) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{tail}")


@dataclass
class BuildReport:
    """What ensure_standins did: seconds spent per stand-in built (none: all cached)."""

    built: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)


def ensure_standins(report: BuildReport) -> dict[str, str]:
    """The stand-in image tags, keyed by stack variable; builds the missing ones."""
    found = standins()
    missing = [standin for standin in found.values() if not image_exists(standin.tag)]
    report.cached = [standin.tag for standin in found.values() if standin not in missing]
    if missing:
        with tempfile.TemporaryDirectory(prefix="sharedsession-standins-") as work:
            deb_cache = Path(work) / "debs"  # shared: the three roots have most packages in common
            deb_cache.mkdir()
            try:
                for standin in missing:
                    report.built[standin.tag] = build_standin(standin, Path(work), deb_cache)
            finally:
                _run(_as_root(["rm", "-rf", str(deb_cache)]), timeout=300)  # debootstrap's files
    return {variable: standin.tag for variable, standin in found.items()}


# -- the app images ----------------------------------------------------------------------

APP_DOCKERFILES = {
    "FLASK_IMAGE": "examples/flask_app/Dockerfile",
    "STARLETTE_IMAGE": "examples/starlette_app/Dockerfile",
    "DJANGO_IMAGE": "examples/django_app/Dockerfile",
}


def build_app_images(python_image: str, tag: str) -> dict[str, str]:
    """Build the example apps from the users' Dockerfiles, on ``python_image``.

    The image names, keyed by the stack variable that takes each.
    """
    images: dict[str, str] = {}
    for variable, dockerfile in APP_DOCKERFILES.items():
        name = f"sharedsession-{Path(dockerfile).parent.name.removesuffix('_app')}:{tag}"
        docker(
            "build",
            "--quiet",
            "--build-arg",
            f"PYTHON_IMAGE={python_image}",
            "-f",
            str(ROOT / dockerfile),
            "-t",
            name,
            str(ROOT),
            timeout=1200,
            env=BUILD_ENV,
        )
        images[variable] = name
    return images

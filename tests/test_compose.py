"""docker-compose.yml: valid Compose, and what the Swarm stack needs.

Every check is a function of the parsed file, run on the real file and, in
``test_each_check_can_fail``, on a copy broken on purpose.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # typed by types-PyYAML (the dev extra's django-stubs brings it)

from sharedsession.cli.diagnostics import eviction_risk

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "docker-compose.override.yml"
SWARM_TEST_STACK = ROOT / "tests" / "swarm" / "stack.yml"
APPS = ("flask", "starlette", "django")
# What `docker stack deploy` accepts at the top level (its legacy v3 schema).
STACK_TOP_LEVEL = {"version", "services", "networks", "volumes", "secrets", "configs"}

Doc = dict[str, Any]
Check = Callable[[Doc], None]


class Reset(list[Any]):
    """A sequence tagged ``!reset`` (Compose: drop what the base file set)."""


class ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus Compose's ``!reset`` tag."""


def _reset(loader: ComposeLoader, node: Any) -> Reset:
    return Reset(loader.construct_sequence(node))


ComposeLoader.add_constructor("!reset", _reset)


def load(path: Path) -> Doc:
    doc = yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 (a safe loader)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def compose_spec() -> Any:
    """The Compose specification's JSON schema, as check-jsonschema ships it."""
    files = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(files.joinpath("compose-spec.json").read_text(encoding="utf-8"))


@pytest.fixture
def compose() -> Doc:
    return load(COMPOSE)


# -- helpers -------------------------------------------------------------------------


def services(doc: Doc) -> dict[str, Doc]:
    found = doc.get("services")
    assert isinstance(found, dict), "no services"
    assert found, "no services"
    return found


def environment(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def strings(value: object) -> Iterator[str]:
    """Every key and scalar in a parsed document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif value is not None:
        yield str(value)


def published(service: Doc) -> set[tuple[int, int]]:
    """(published, target) port pairs, short or long syntax."""
    pairs: set[tuple[int, int]] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            pairs.add((int(port["published"]), int(port["target"])))
        else:
            host, _, target = str(port).rpartition(":")
            pairs.add((int(host.rpartition(":")[2]), int(target.split("/")[0])))
    return pairs


def command_of(service: Doc) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def option(tokens: list[str], name: str) -> str | None:
    """The value after ``--name`` in a redis-server command line."""
    for i, token in enumerate(tokens[:-1]):
        if token == f"--{name}":
            return tokens[i + 1]
    return None


# -- checks --------------------------------------------------------------------------


def validate_against_compose_spec(doc: Doc, schema: Any) -> None:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator_class(schema).iter_errors(doc)
    ]
    assert not errors, "\n".join(errors)


def check_images(doc: Doc) -> None:
    # docker stack deploy ignores build: every service must name an image.
    for name, service in services(doc).items():
        assert isinstance(service.get("image"), str), f"{name}: no image"
        assert service["image"], f"{name}: no image"


# ${NAME}, ${NAME:-default} or ${NAME-default}, as Compose and `docker stack deploy` interpolate.
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def check_image_defaults(doc: Doc) -> None:
    # An image may be a variable (tests/swarm runs the stack on local stand-ins),
    # but only with a default: deployed as it is, the stack runs the public images.
    for name, service in services(doc).items():
        for variable, default in VARIABLE.findall(str(service.get("image", ""))):
            assert default, f"{name}: image ${{{variable}}} has no default"


def check_replicas(doc: Doc) -> None:
    for app in APPS:
        replicas = (services(doc)[app].get("deploy") or {}).get("replicas", 1)
        assert isinstance(replicas, int), f"{app}: replicas {replicas!r}"
        assert replicas > 1, f"{app}: {replicas} replica(s)"


def check_published_ports(doc: Doc) -> None:
    assert published(services(doc)["flask"]) == {(8000, 8000)}
    assert published(services(doc)["starlette"]) == {(8001, 8000)}
    assert published(services(doc)["django"]) == {(8002, 8000)}


def check_redis_url(doc: Doc) -> None:
    for app in APPS:
        url = urlsplit(environment(services(doc)[app]).get("REDIS_URL", ""))
        assert url.scheme == "redis", f"{app}: REDIS_URL {url.geturl()!r}"
        assert url.hostname in services(doc), f"{app}: REDIS_URL names no service: {url.hostname}"
        assert "redis" in services(doc)[url.hostname]["image"], f"{app}: {url.hostname} is not Redis"
        assert url.path == "/1", f"{app}: sessions belong in a database of their own, not {url.path!r}"


def check_healthchecks(doc: Doc) -> None:
    for name, service in services(doc).items():
        health = service.get("healthcheck") or {}
        assert health.get("test"), f"{name}: no healthcheck"
        assert not health.get("disable"), f"{name}: healthcheck disabled"


def check_secret(doc: Doc) -> None:
    declared = doc.get("secrets") or {}
    for app in APPS:
        service = services(doc)[app]
        mounts = []
        for entry in service.get("secrets") or []:
            source = entry if isinstance(entry, str) else entry["source"]
            target = source if isinstance(entry, str) else entry.get("target", source)
            assert source in declared, f"{app}: secret {source!r} is not declared at the top level"
            mounts.append(target if target.startswith("/") else f"/run/secrets/{target}")
        key_file = environment(service).get("SECRET_KEY_FILE")
        assert key_file in mounts, f"{app}: SECRET_KEY_FILE={key_file!r}, secrets mounted at {mounts}"
        assert "SECRET_KEY" not in environment(service), f"{app}: the key itself is in the environment"
    for name, secret in declared.items():
        path = ROOT / str(secret.get("file", ""))
        assert secret.get("file"), f"secret {name}: not from a file"
        assert path.parent != ROOT, f"secret {name}: not in a folder of its own"
        ignore = path.parent / ".gitignore"
        assert ignore.is_file(), f"secret {name}: {path.parent.name}/ has no .gitignore"
        assert ignore.read_text().split() == ["*", "!.gitignore"], (
            f"{path.parent.name}/ is not kept out of git"
        )


def check_dockerfiles(doc: Doc) -> None:
    for app in APPS:
        build = services(doc)[app].get("build")
        assert isinstance(build, dict), f"{app}: no build section"
        dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{app}: {dockerfile} does not exist"


def check_no_stickiness(doc: Doc) -> None:
    # Round robin is the point: a sticky balancer would hide every bug sharing is meant to fix.
    sticky = [text for text in strings(doc) if "sticky" in text.lower()]
    assert not sticky, f"stickiness configured: {sticky}"


def check_redis_durability(doc: Doc) -> None:
    redis = services(doc)["redis"]
    tokens = command_of(redis)
    assert option(tokens, "appendonly") == "yes", f"redis: append-only file off: {tokens}"
    policy = option(tokens, "maxmemory-policy")
    assert policy is not None, "redis: no maxmemory-policy"
    assert eviction_risk(policy) == "safe", f"redis: eviction policy {policy} can evict sessions"
    named = set(doc.get("volumes") or {})
    mounted = set()
    for volume in redis.get("volumes") or []:
        if isinstance(volume, dict):
            mounted.add((volume.get("source"), volume.get("target")))
        else:
            source, _, target = str(volume).partition(":")
            mounted.add((source, target.split(":")[0]))
    assert any(source in named and target == "/data" for source, target in mounted), (
        f"redis: /data is not on a named volume: {mounted}"
    )


def check_stack_compatible(doc: Doc) -> None:
    extra = {key for key in doc if not key.startswith("x-")} - STACK_TOP_LEVEL
    assert not extra, f"docker stack deploy refuses top-level {extra}"
    for name, service in services(doc).items():
        depends_on = service.get("depends_on", [])
        assert isinstance(depends_on, list), f"{name}: docker stack deploy refuses long depends_on syntax"


def check_rolling_updates(doc: Doc) -> None:
    for app in APPS:
        deploy = services(doc)[app].get("deploy") or {}
        update = deploy.get("update_config") or {}
        assert update.get("order") == "start-first", f"{app}: updates stop a replica before starting one"
        assert update.get("failure_action") == "rollback", f"{app}: a failed update is not rolled back"
        assert update.get("parallelism", 0) >= 1, f"{app}: update_config {update}"
        assert update.get("delay"), f"{app}: update_config {update}"
        assert deploy.get("restart_policy"), f"{app}: no restart_policy"


CHECKS: list[Check] = [
    check_images,
    check_image_defaults,
    check_replicas,
    check_published_ports,
    check_redis_url,
    check_healthchecks,
    check_secret,
    check_dockerfiles,
    check_no_stickiness,
    check_redis_durability,
    check_stack_compatible,
    check_rolling_updates,
]


# -- the real file -------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(compose: Doc, compose_spec: Any) -> None:
    validate_against_compose_spec(compose, compose_spec)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_compose_file(check: Check, compose: Doc) -> None:
    check(compose)


# -- every check can fail ------------------------------------------------------------


def _set(path: str, value: object) -> Callable[[Doc], None]:
    """A breakage: set the value at a dotted path (services.flask.image)."""

    def apply(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node.setdefault(part, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return apply


_DELETE = object()


def _unshare(doc: Doc) -> None:
    # The apps share mappings through a YAML anchor: give each its own copy.
    for service in services(doc).values():
        for key in list(service):
            service[key] = copy.deepcopy(service[key])


BREAKAGES: list[tuple[Check, Callable[[Doc], None]]] = [
    (check_images, _set("services.redis.image", _DELETE)),
    (check_image_defaults, _set("services.redis.image", "${REDIS_IMAGE}")),
    (check_image_defaults, _set("services.flask.image", "${FLASK_IMAGE:-}")),
    (check_replicas, _set("services.starlette.deploy.replicas", 1)),
    (check_replicas, _set("services.django.deploy.replicas", 1)),
    (check_replicas, _set("services.flask.deploy", _DELETE)),
    (check_published_ports, _set("services.starlette.ports", ["8000:8000"])),
    (check_published_ports, _set("services.django.ports", ["8001:8000"])),
    (check_redis_url, _set("services.flask.environment.REDIS_URL", "redis://localhost:6379/1")),
    (check_redis_url, _set("services.starlette.environment.REDIS_URL", "redis://redis:6379/0")),
    (check_healthchecks, _set("services.redis.healthcheck", _DELETE)),
    (check_healthchecks, _set("services.flask.healthcheck.disable", True)),
    (check_secret, _set("services.starlette.environment.SECRET_KEY_FILE", "/run/secrets/other")),
    (check_secret, _set("services.flask.secrets", [])),
    (check_secret, _set("secrets", {})),
    (check_secret, _set("services.flask.environment.SECRET_KEY", "in-the-open")),
    (check_dockerfiles, _set("services.flask.build.dockerfile", "examples/nowhere/Dockerfile")),
    (check_dockerfiles, _set("services.django.build.dockerfile", "examples/nowhere/Dockerfile")),
    (
        check_no_stickiness,
        _set(
            "services.flask.deploy.labels", {"traefik.http.services.flask.loadbalancer.sticky.cookie": "true"}
        ),
    ),
    (
        check_redis_durability,
        _set("services.redis.command", ["redis-server", "--maxmemory-policy", "noeviction"]),
    ),
    (
        check_redis_durability,
        _set("services.redis.command", "redis-server --appendonly yes --maxmemory-policy volatile-lru"),
    ),
    (check_redis_durability, _set("services.redis.volumes", [])),
    (check_stack_compatible, _set("name", "sharedsession")),
    (check_stack_compatible, _set("services.flask.depends_on", {"redis": {"condition": "service_healthy"}})),
    (check_rolling_updates, _set("services.starlette.deploy.update_config.order", "stop-first")),
    (check_rolling_updates, _set("services.flask.deploy.update_config.failure_action", "pause")),
]


@pytest.mark.parametrize(
    ("check", "breakage"), BREAKAGES, ids=[f"{check.__name__}-{i}" for i, (check, _) in enumerate(BREAKAGES)]
)
def test_each_check_can_fail(compose: Doc, check: Check, breakage: Callable[[Doc], None]) -> None:
    _unshare(compose)
    breakage(compose)
    with pytest.raises(AssertionError):
        check(compose)


def test_the_schema_check_can_fail(compose: Doc, compose_spec: Any) -> None:
    compose["services"]["flask"]["replica"] = 3
    with pytest.raises(AssertionError, match="replica"):
        validate_against_compose_spec(compose, compose_spec)


def test_every_check_has_a_breakage() -> None:
    assert {check for check, _ in BREAKAGES} == set(CHECKS)


# -- docker compose on one machine ---------------------------------------------------


@pytest.fixture
def override() -> Doc:
    return load(OVERRIDE)


def test_override_follows_the_compose_specification(override: Doc, compose_spec: Any) -> None:
    validate_against_compose_spec(override, compose_spec)


def test_override_stands_in_for_the_routing_mesh(compose: Doc, override: Doc) -> None:
    # Three replicas cannot all publish one host port: the apps publish nothing,
    # a round-robin balancer publishes what the stack does.
    for app in APPS:
        ports = services(override)[app]["ports"]
        assert isinstance(ports, Reset)
        assert ports == []
    balancer = services(override)["balancer"]
    assert published(balancer) == {(8000, 8000), (8001, 8001), (8002, 8002)}
    assert {p for p, _ in published(balancer)} == {
        p for app in APPS for p, _ in published(services(compose)[app])
    }
    config = override["configs"]["haproxy"]["content"]
    assert config.count("balance roundrobin") == len(APPS)
    for app in APPS:
        assert f"{app}:8000 check resolvers docker" in config
    assert_no_sticky_directives(config)
    check_no_stickiness(override)
    check_image_defaults(override)


def assert_no_sticky_directives(haproxy_config: str) -> None:
    # HAProxy's stickiness comes from `cookie` and `stick` directives.
    directives = {line.split()[0] for line in haproxy_config.splitlines() if line.strip()}
    assert not directives & {"cookie", "stick", "stick-table", "persist"}, directives


def test_override_haproxy_config_is_valid(override: Doc, tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed")
    path = tmp_path / "haproxy.cfg"
    path.write_text(override["configs"]["haproxy"]["content"])
    done = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# -- the Swarm test's second stack file (tests/swarm) --------------------------------


@pytest.fixture
def swarm_test_stack() -> Doc:
    return load(SWARM_TEST_STACK)


def test_swarm_test_stack_follows_the_compose_specification(swarm_test_stack: Doc, compose_spec: Any) -> None:
    validate_against_compose_spec(swarm_test_stack, compose_spec)
    check_stack_compatible(swarm_test_stack)


def test_swarm_test_stack_changes_only_what_the_machine_lacks(compose: Doc, swarm_test_stack: Doc) -> None:
    # The apps are deployed as users deploy them; Redis only resolves to its
    # task rather than to a virtual IP (no IPVS); a balancer is added.
    layered = services(swarm_test_stack)
    assert set(layered) == {"redis", "balancer"}
    assert layered["redis"] == {"deploy": {"endpoint_mode": "dnsrr"}}
    assert set(swarm_test_stack["secrets"]) == set(compose["secrets"])
    balancer = layered["balancer"]
    assert all(port["mode"] == "host" for port in balancer["ports"])
    check_image_defaults(swarm_test_stack)
    config = (ROOT / swarm_test_stack["configs"]["haproxy"]["file"]).read_text()
    for app in APPS:
        assert f"server-template {app} 10 tasks.{app}:8000" in config
    assert config.count("balance roundrobin") == len(APPS) + 1  # each app, and all of them
    assert_no_sticky_directives(config)
    check_no_stickiness(swarm_test_stack)

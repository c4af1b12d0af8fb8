"""INFO and HELLO replies of the servers the doctor tells apart, as they come over the wire.

Redis 7.0.15 was recorded here (Debian bookworm's redis-server). The others
do not run on this machine: their replies are rebuilt field by field from
each project's source (the INFO "# Server" format string and the HELLO
reply builder), at the version named, and trimmed to the server section plus
the fields the doctor reads. The source lines are named next to each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis._parsers.helpers import parse_info as _parse_info

#: redis-py's own INFO parser: what the doctor receives from client.info().
parse_info: Callable[[str], dict[str, Any]] = _parse_info


@dataclass(frozen=True)
class Replies:
    """What one server answers to INFO (raw text) and to HELLO (as redis-py hands it over)."""

    product: str
    version: str
    info_text: str
    hello: object

    @property
    def info(self) -> dict[str, Any]:
        """INFO as redis-py parses it (numbers become ints or floats, db lines dicts)."""
        return parse_info(self.info_text)


def _info(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


def _resp2(*items: object) -> list[object]:
    """A RESP2 HELLO reply: a flat list, bulk strings as bytes."""
    return [item.encode() if isinstance(item, str) else item for item in items]


# Recorded: redis-server 7.0.15 (Debian bookworm), INFO server, HELLO on a RESP2 connection.
REDIS_7_0_15 = Replies(
    "Redis",
    "7.0.15",
    _info(
        "# Server",
        "redis_version:7.0.15",
        "redis_git_sha1:00000000",
        "redis_git_dirty:0",
        "redis_build_id:ae4d7c971a948f0",
        "redis_mode:standalone",
        "os:Linux 6.18.44-fc-v1272 x86_64",
        "arch_bits:64",
        "monotonic_clock:POSIX clock_gettime",
        "multiplexing_api:epoll",
        "atomicvar_api:c11-builtin",
        "gcc_version:12.2.0",
        "process_id:17895",
        "process_supervised:no",
        "run_id:b00ec22f2a6d5ff8ef614707e1e723111ec7d089",
        "tcp_port:6392",
        "server_time_usec:1796398066037806",
        "uptime_in_seconds:718",
        "uptime_in_days:0",
        "hz:10",
        "configured_hz:10",
        "lru_clock:1235953",
        "executable:/work/redis-server",
        "config_file:",
        "io_threads_active:0",
    ),
    _resp2(
        "server",
        "redis",
        "version",
        "7.0.15",
        "proto",
        2,
        "id",
        14,
        "mode",
        "standalone",
        "role",
        "master",
        "modules",
        [],
    ),
)

# Rebuilt: an older Redis (6.0 has HELLO, but no ZADD GT).
REDIS_6_0_16 = Replies(
    "Redis",
    "6.0.16",
    _info("# Server", "redis_version:6.0.16", "redis_mode:standalone", "executable:/usr/bin/redis-server"),
    _resp2(
        "server",
        "redis",
        "version",
        "6.0.16",
        "proto",
        2,
        "id",
        3,
        "mode",
        "standalone",
        "role",
        "master",
        "modules",
        [],
    ),
)

# Rebuilt from valkey-io/valkey 7.2.5: src/server.c ("redis_version", "server_name", "valkey_version"),
# src/networking.c helloCommand (server "redis", version VALKEY_VERSION), src/version.h.
VALKEY_7_2_5 = Replies(
    "Valkey",
    "7.2.5",
    _info(
        "# Server",
        "redis_version:7.2.4",
        "server_name:valkey",
        "valkey_version:7.2.5",
        "redis_git_sha1:00000000",
        "redis_mode:standalone",
        "executable:/usr/local/bin/valkey-server",
    ),
    _resp2(
        "server",
        "redis",
        "version",
        "7.2.5",
        "proto",
        2,
        "id",
        5,
        "mode",
        "standalone",
        "role",
        "master",
        "modules",
        [],
    ),
)

# Rebuilt from valkey-io/valkey 8.0.1: the same INFO fields; HELLO names valkey itself
# (unless extended-redis-compatibility is on), as a RESP3 map here.
VALKEY_8_0_1 = Replies(
    "Valkey",
    "8.0.1",
    _info(
        "# Server",
        "redis_version:7.2.4",
        "server_name:valkey",
        "valkey_version:8.0.1",
        "redis_mode:cluster",
        "executable:/usr/local/bin/valkey-server",
    ),
    {
        b"server": b"valkey",
        b"version": b"8.0.1",
        b"proto": 3,
        b"id": 7,
        b"mode": b"cluster",
        b"role": b"master",
        b"modules": [],
    },
)

# Rebuilt from dragonflydb/dragonfly v1.40 (src/server/server_family.cc: kRedisVersion "7.4.0",
# "dragonfly_version" from GetVersion() = "df-" + git tag; HELLO adds dragonfly_version).
DRAGONFLY_1_40_0 = Replies(
    "Dragonfly",
    "1.40.0",
    _info(
        "# Server",
        "redis_version:7.4.0",
        "dragonfly_version:df-v1.40.0",
        "redis_mode:standalone",
        "arch_bits:64",
        "multiplexing_api:iouring",
        "tcp_port:6379",
        "# Memory",
        "maxmemory_policy:noeviction",
    ),
    _resp2(
        "server",
        "redis",
        "version",
        "7.4.0",
        "dragonfly_version",
        "df-v1.40.0",
        "proto",
        2,
        "id",
        1,
        "mode",
        "standalone",
        "role",
        "master",
    ),
)

# From Dragonfly's HELLO documentation page (an older release): "dfly_version", Redis 6.2.11,
# and no INFO at hand (as when INFO is refused).
DRAGONFLY_DOCS = Replies(
    "Dragonfly",
    "dev",
    "",
    _resp2(
        "server",
        "redis",
        "version",
        "6.2.11",
        "dfly_version",
        "df-dev",
        "proto",
        2,
        "id",
        1,
        "mode",
        "standalone",
        "role",
        "master",
    ),
)

# Rebuilt from Snapchat/KeyDB v6.3.4 (src/server.cpp: redis_version is KeyDB's own version,
# and the default INFO sections end with "# KeyDB" mvcc_depth; networking.cpp: HELLO says redis).
KEYDB_6_3_4 = Replies(
    "KeyDB",
    "6.3.4",
    _info(
        "# Server",
        "redis_version:6.3.4",
        "redis_git_sha1:00000000",
        "redis_mode:standalone",
        "executable:/usr/local/bin/keydb-server",
        "config_file:/etc/keydb/keydb.conf",
        "",
        "# KeyDB",
        "mvcc_depth:0",
    ),
    _resp2(
        "server",
        "redis",
        "version",
        "6.3.4",
        "proto",
        2,
        "id",
        4,
        "mode",
        "standalone",
        "role",
        "master",
        "modules",
        [],
    ),
)

# Rebuilt from microsoft/garnet 2.1.4 (libs/server/Metrics/Info/GarnetInfoMetrics.cs: garnet_version,
# redis_version = RedisProtocolVersion "7.4.3" of libs/host/GarnetServer.cs; BasicCommands.cs HELLO).
GARNET_2_1_4 = Replies(
    "Garnet",
    "2.1.4",
    _info(
        "# Server",
        "garnet_version:2.1.4",
        "redis_version:7.4.3",
        "os:Unix 6.8.0.1",
        "processor_count:8",
        "arch_bits:64",
        "uptime_in_seconds:12",
    ),
    {
        "server": "redis",
        "version": "7.4.3",
        "garnet_version": "2.1.4",
        "proto": 3,
        "id": 2,
        "mode": "standalone",
        "role": "master",
        "modules": [],
    },
)

ALL = (
    REDIS_7_0_15,
    REDIS_6_0_16,
    VALKEY_7_2_5,
    VALKEY_8_0_1,
    DRAGONFLY_1_40_0,
    DRAGONFLY_DOCS,
    KEYDB_6_3_4,
    GARNET_2_1_4,
)

"""The ``sharedsession`` command line: parsing, and one handler per subcommand.

::

    sharedsession stats [--sample N] [--json]
    sharedsession sessions USER [--json]
    sharedsession revoke HANDLE [--json]
    sharedsession revoke-user USER [--json]
    sharedsession doctor [--cluster | --sentinel HOST:PORT ... [--service NAME]] [--json]
    sharedsession demo ...

The admin commands find Redis and the key prefix the way the example apps
do (``REDIS_URL``, ``KEY_PREFIX``, ``IDLE_TIMEOUT``), so that running the
command inside an app's container agrees with the app. ``main`` returns the
exit code; the console script and ``python -m sharedsession`` exit with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from redis.exceptions import RedisError

from sharedsession import __version__
from sharedsession._core.config import SessionConfig
from sharedsession._core.errors import StoreUnavailableError
from sharedsession._urls import redact_url, scrub
from sharedsession.cli.diagnostics import DEFAULT_SAMPLE, collect_stats, render_stats
from sharedsession.cli.doctor import BadTarget, Target, Unreachable, examine, printable, render
from sharedsession.store import SessionInfo, SessionStore

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2  # also what argparse exits with on a bad command line
EXIT_UNAVAILABLE = 3
EXIT_BLOCKED = 4  # doctor: a check failed
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

_UA_WIDTH = 48

_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  done
  {EXIT_NOT_FOUND}  not found (revoke: no live session has that handle)
  {EXIT_USAGE}  bad usage: unknown option, malformed handle or Redis URL, bad number
  {EXIT_UNAVAILABLE}  Redis unreachable, timing out, or refusing a command
  {EXIT_BLOCKED}  doctor: a check failed, something blocks (warnings alone exit 0)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)

environment:
  REDIS_URL     default of --redis-url
  KEY_PREFIX    default of --prefix
  IDLE_TIMEOUT  default of --idle-timeout
"""

Handler = Callable[[SessionStore, argparse.Namespace], int]


class UsageError(Exception):
    """A bad argument found after parsing: exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code.

    Never raises SystemExit itself: argparse's exits (``--help``, a bad
    option) are turned into their exit code, so tests can call it in-process.
    """
    parser = build_parser(_prog_name())
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command: Callable[[argparse.Namespace], int] = args.sharedsession_command
    try:
        return command(args)
    except KeyboardInterrupt:  # Ctrl-C during a long SCAN: no traceback
        return EXIT_INTERRUPTED


def build_parser(prog: str = "sharedsession") -> argparse.ArgumentParser:
    """The argument parser of every subcommand, the demo's included."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Inspect and end sharedsession sessions stored in Redis.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    common = _common_options()

    def admin(name: str, handler: Handler, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=_EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(sharedsession_command=partial(_run_admin, handler))
        return sub

    stats = admin("stats", _stats, "Count sessions, estimate their memory, check the Redis settings.")
    stats.add_argument(
        "--sample",
        type=_count,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"measure MEMORY USAGE of up to N session keys (default {DEFAULT_SAMPLE}; 0: skip)",
    )
    user_help = "the user id the app set (session.user_id)"
    sessions = admin("sessions", _sessions, "List a user's live sessions.")
    sessions.add_argument("user", type=_user_id, metavar="USER", help=user_help)
    revoke = admin("revoke", _revoke, "End one session by its handle.")
    revoke.add_argument("handle", metavar="HANDLE", help="32 hex digits, as `sessions` lists them")
    revoke_user = admin("revoke-user", _revoke_user, "End every session of a user (log out everywhere).")
    revoke_user.add_argument("user", type=_user_id, metavar="USER", help=user_help)
    _add_doctor(commands)
    _add_demo(commands)
    return parser


# -- options ---------------------------------------------------------------------


def _common_options(*, idle_timeout: bool = True) -> argparse.ArgumentParser:
    """--redis-url, --prefix, --idle-timeout (unless told not), --json: read when the parser is built."""
    defaults = {f.name: f.default for f in dataclasses.fields(SessionConfig)}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or defaults["redis_url"],
        metavar="URL",
        # Not %(default)s: $REDIS_URL may hold a password, and --help must not print it.
        help=f"where sessions live (default: $REDIS_URL, else {defaults['redis_url']})",
    )
    common.add_argument(
        "--prefix",
        default=os.environ.get("KEY_PREFIX") or defaults["key_prefix"],
        help=f"key prefix the apps use (default: $KEY_PREFIX, else {defaults['key_prefix']!r})",
    )
    if idle_timeout:
        common.add_argument(
            "--idle-timeout",
            type=_seconds,
            default=os.environ.get("IDLE_TIMEOUT") or defaults["idle_timeout"],
            metavar="SECONDS",
            help="the apps' idle timeout; only used to derive 'last seen' from a session's TTL "
            f"(default: $IDLE_TIMEOUT, else {defaults['idle_timeout']:.0f})",
        )
    common.add_argument("--json", action="store_true", help="print JSON for machines")
    return common


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 1 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be at least 1 second, got {text!r}")
    return value


def _user_id(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a user id must not be empty")
    return text


def _prog_name() -> str:
    if os.path.basename(sys.argv[0]) == "__main__.py":
        return "python -m sharedsession"
    return "sharedsession"


# -- running admin commands ------------------------------------------------------------


def _run_admin(handler: Handler, args: argparse.Namespace) -> int:
    """Open a store on --redis-url and run ``handler``; map failures to exit codes."""
    url: str = args.redis_url
    try:
        store = _open_store(url, args.prefix, args.idle_timeout)
    except (TypeError, ValueError) as exc:  # SessionConfig and redis-py check the URL and prefix
        return _fail(EXIT_USAGE, scrub(str(exc), url))
    try:
        return handler(store, args)
    except UsageError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except StoreUnavailableError as exc:
        reason = exc.__cause__ if exc.__cause__ is not None else exc
        return _fail(EXIT_UNAVAILABLE, scrub(f"cannot reach Redis at {redact_url(url)}: {reason}", url))
    except RedisError as exc:  # reachable, but refused a command (ACL, OOM, wrong type)
        return _fail(EXIT_UNAVAILABLE, scrub(f"Redis at {redact_url(url)} refused: {exc}", url))
    finally:
        store.close()


def _open_store(url: str, prefix: str, idle_timeout: float) -> SessionStore:
    config = SessionConfig(
        # Admin operations never sign or read a cookie, but SessionConfig
        # requires a key: a random one, used for nothing and thrown away, so
        # the CLI never needs (or can leak) the apps' real secret.
        secret_key=secrets.token_urlsafe(32),
        redis_url=url,
        key_prefix=prefix,
        idle_timeout=idle_timeout,
    )
    return SessionStore(config)


def _fail(code: int, message: str) -> int:
    print(f"sharedsession: {message}", file=sys.stderr)
    return code


def _emit_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


# -- sessions, revoke, revoke-user ---------------------------------------------------


def _sessions(store: SessionStore, args: argparse.Namespace) -> int:
    infos = store.sessions_of(args.user)
    if args.json:
        _emit_json([_info_json(info) for info in infos])
    elif not infos:
        print(f"no live sessions for user {_printable(args.user)}")
    else:
        print(_table(infos))
        idle = f"{args.idle_timeout:g}"
        print(f"\n{len(infos)} session(s); times in UTC; last seen = expiry - idle timeout ({idle} s)")
    return EXIT_OK


def _revoke(store: SessionStore, args: argparse.Namespace) -> int:
    handle: str = args.handle
    try:
        revoked = store.revoke(handle)
    except ValueError as exc:  # malformed handle: refused before any command is sent
        raise UsageError(_printable(str(exc))) from None
    if args.json:
        _emit_json({"handle": handle, "revoked": revoked})
    elif revoked:
        print(f"revoked session {handle}")
    else:
        print(f"sharedsession: no live session with handle {handle}", file=sys.stderr)
    return EXIT_OK if revoked else EXIT_NOT_FOUND


def _revoke_user(store: SessionStore, args: argparse.Namespace) -> int:
    ended = store.revoke_user(args.user)
    if args.json:
        _emit_json({"user": args.user, "ended": ended})
    else:
        print(f"ended {ended} session(s) of user {_printable(args.user)}")
    return EXIT_OK


def _info_json(info: SessionInfo) -> dict[str, object]:
    return {
        "handle": info.handle,
        "user_id": info.user_id,
        "created": info.created.isoformat(),
        "last_seen": info.last_seen.isoformat(),
        "expires": info.expires.isoformat(),
        "client_ip": info.client_ip,
        "user_agent": info.user_agent,
    }


def _table(infos: Sequence[SessionInfo]) -> str:
    header = ("HANDLE", "CREATED", "LAST SEEN", "EXPIRES", "CLIENT IP", "USER AGENT")
    rows = [header] + [
        (
            info.handle,
            _time(info.created),
            _time(info.last_seen),
            _time(info.expires),
            _printable(info.client_ip or "-"),
            _shorten(_printable(info.user_agent or "-"), _UA_WIDTH),
        )
        for info in infos
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


_printable = printable  # a User-Agent is attacker-chosen, and must not drive the admin's terminal


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# -- stats -------------------------------------------------------------------------


def _stats(store: SessionStore, args: argparse.Namespace) -> int:
    stats = collect_stats(store, sample=args.sample)
    if args.json:
        _emit_json(dataclasses.asdict(stats))
    else:
        print(render_stats(stats))
    return EXIT_OK


# -- doctor ----------------------------------------------------------------------------

_DOCTOR = """\
Check a deployment's Redis before it bites: the server and its version, what
sharedsession needs (Lua with cjson, hashes, sorted sets with ZADD GT,
PEXPIREAT: run, not assumed), Cluster slots or Sentinel agreement, the
eviction policy, persistence, memory headroom, round-trip latency, the clock,
replication, and whether anything else uses the database. One line per check.

It writes only throwaway keys under the prefix (<prefix>doctor:...) and one
throwaway session, and deletes them.
"""


def _add_doctor(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "Check a deployment's Redis: exit 0 only when nothing blocks."
    parser = commands.add_parser(
        "doctor",
        parents=[_common_options(idle_timeout=False)],
        help=summary,
        description=_DOCTOR,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--cluster",
        action="store_true",
        help="--redis-url names a node of a Redis Cluster: check every master",
    )
    where.add_argument(
        "--sentinel",
        action="append",
        type=_address,
        metavar="HOST:PORT",
        help="a Sentinel to ask for the master (repeat for each); --redis-url then gives only "
        "the database, user, password and TLS",
    )
    parser.add_argument(
        "--service",
        metavar="NAME",
        help="the master's name the Sentinels monitor (default: mymaster)",
    )
    parser.set_defaults(sharedsession_command=_doctor)


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:26379
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _doctor(args: argparse.Namespace) -> int:
    url: str = args.redis_url
    if args.service is not None and not args.sentinel:
        return _fail(EXIT_USAGE, "--service goes with --sentinel")
    target = Target(
        url=url,
        prefix=args.prefix,
        mode="cluster" if args.cluster else "sentinel" if args.sentinel else "single",
        sentinels=tuple(dict.fromkeys(args.sentinel or ())),  # each once
        service=args.service or "mymaster",
    )
    try:
        report = examine(target)
    except BadTarget as exc:
        return _fail(EXIT_USAGE, scrub(str(exc), url))
    except Unreachable as exc:
        return _fail(EXIT_UNAVAILABLE, scrub(str(exc), url))
    except RedisError as exc:  # reachable, but refused what the doctor cannot do without
        return _fail(EXIT_UNAVAILABLE, scrub(f"Redis at {redact_url(url)} refused: {exc}", url))
    if args.json:
        _emit_json(report.to_json())
    else:
        print(render(report))
    return EXIT_BLOCKED if report.blocking else EXIT_OK


# -- demo ------------------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "Run the example apps as replicas behind a round-robin balancer."
    parser = commands.add_parser("demo", help=summary, description=summary)
    try:
        from sharedsession import demo
    except ImportError as exc:
        # The demo needs the examples' extras; without them the admin
        # commands must still work, and `demo` says what is missing.
        parser.add_argument("demo_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(sharedsession_command=partial(_demo_unavailable, exc))
        return
    demo.add_arguments(parser)
    parser.set_defaults(sharedsession_command=demo.run)


def _demo_unavailable(error: ImportError, args: argparse.Namespace) -> int:
    return _fail(EXIT_USAGE, f'the demo needs: pip install "sharedsession[examples]" ({error})')

"""``python -m bench``: run the benchmark and write docs/benchmarks/results.{md,png,json}.

::

    python -m bench                      # 5 rounds x 2 s per measurement (about 17 minutes on 2 CPUs)
    python -m bench --quick              # 3 rounds x 1 s: a look, not for publication
    python -m bench --frameworks flask --variants sharedsession,flask-session --routes read,write
    python -m bench --networks loopback --shapes tiny   # one setting of each
    python -m bench render               # re-render results.md and the chart from results.json
    python -m bench profile              # py-spy on sharedsession's /read and /write
    python -m bench profile --frameworks asgi --variants sharedsession-cached,cookie --routes read
    python -m bench sealing              # CPU cost of encryption at rest per request, in-process
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import report
from bench.harness import Bench, Cpus, Options, Results
from bench.model import NETWORKS, ROUTES, SHAPES, VARIANTS, Framework, Network, Shape
from bench.wrk import find_wrk

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"


def _names(text: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    p.add_argument("action", nargs="?", choices=["run", "render", "profile", "sealing"], default="run")
    p.add_argument("--duration", type=int, default=2, help="seconds of wrk per measurement (2)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are over rounds (5)")
    p.add_argument("--quick", action="store_true", help="3 rounds of 1 s, fewer counted requests")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    p.add_argument("--frameworks", default="flask,asgi", help="flask,asgi")
    variant_names = sorted({v.name for v in VARIANTS} - {"none"})
    optional = sorted({v.name for v in VARIANTS if v.optional})
    p.add_argument(
        "--variants",
        default="",
        help=f"subset of {','.join(variant_names)} (the floor always runs; "
        f"{','.join(optional)} only when named)",
    )
    p.add_argument("--networks", default=",".join(NETWORKS), help="loopback,delay")
    p.add_argument("--shapes", default=",".join(SHAPES), help="tiny,realistic")
    p.add_argument(
        "--rtt-ms", type=float, default=0.5, help="what the delay line adds to a round trip, in ms (0.5)"
    )
    route_names = [r.name for r in ROUTES]
    p.add_argument("--routes", default="", help=f"subset of {','.join(route_names)}")
    p.add_argument(
        "--build",
        action="append",
        default=[],
        metavar="TAG=PATH",
        help="also run the sharedsession in PATH (a src folder) as variant sharedsession@TAG",
    )
    p.add_argument("--no-lost", action="store_true", help="skip the lost-updates test")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (docs/benchmarks)")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="a Redis to use (default: $REDIS_URL; unset: a redis-server started on a free port)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        chosen = _names(args.frameworks, ["flask", "asgi"], "framework")
        frameworks = tuple(fw for fw in ("flask", "asgi") if fw in chosen)
        variants = _names(args.variants, sorted({v.name for v in VARIANTS}), "variant")
        routes = _names(args.routes, [r.name for r in ROUTES], "route")
        chosen_networks = _names(args.networks, NETWORKS, "network setting")
        chosen_shapes = _names(args.shapes, SHAPES, "session shape")
    except argparse.ArgumentTypeError as exc:
        parser().error(str(exc))
    networks: tuple[Network, ...] = tuple(n for n in NETWORKS if n in chosen_networks)
    shapes: tuple[Shape, ...] = tuple(s for s in SHAPES if s in chosen_shapes)
    out: Path = args.out
    if args.action == "render":
        results = Results.from_json((out / "results.json").read_text())
        for path in report.write(results, out, with_chart=not args.no_chart):
            print(f"wrote {path}")
        return 0
    if args.action == "profile":
        return _profile(args, frameworks, variants or ("sharedsession",), routes or ("read", "write"))
    if args.action == "sealing":
        from bench import sealing

        return sealing.main()
    builds: dict[str, str] = {}
    for spec in args.build:
        tag, sep, path = spec.partition("=")
        if not sep or not tag.isidentifier() or not (Path(path) / "sharedsession").is_dir():
            parser().error(f"--build {spec!r}: expected TAG=PATH, PATH holding a sharedsession package")
        builds[tag] = str(Path(path).resolve())
    options = Options(
        duration_s=1 if args.quick else args.duration,
        rounds=3 if args.quick else args.rounds,
        connections=args.connections,
        count_requests=20 if args.quick else 50,
        frameworks=frameworks,
        variants=variants,
        routes=routes,
        networks=networks,
        shapes=shapes,
        rtt_ms=args.rtt_ms,
        redis_url=args.redis_url or None,
        pin=not args.no_pin,
        lost=not args.no_lost,
        builds=builds,
        command=shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]),
    )
    find_wrk()  # before anything else: says how to install it
    runs = options.measurements()
    starts = options.servers_per_round()
    n_variants = len(options.selected_variants())
    estimate = options.rounds * (starts * 1.5 + runs * (options.duration_s + 0.2)) + n_variants * 8 + 20
    print(
        f"about {estimate / 60:.0f} min: {options.rounds} rounds of {runs} measurements "
        f"({starts} servers) of {options.duration_s} s"
    )
    results = Bench(options).run()
    for path in report.write(results, out, with_chart=not args.no_chart):
        print(f"wrote {path}")
    print()
    print("\n".join(report.delay_lines(results.meta)))
    print()
    print("\n".join(report.summary_table(results)))
    print()
    print("\n".join(report.targets_table(results)))
    print()
    print(f"{report.targets_summary(results)}; the run took {results.meta['elapsed_s'] / 60:.1f} min")
    note = report.cookie_note(results)
    if note:
        print(note)
    return 0


def _profile(
    args: argparse.Namespace, frameworks: Sequence[Framework], variants: Sequence[str], routes: Sequence[str]
) -> int:
    from bench import profile, redis_tools, servers

    cpus = Cpus.plan(not args.no_pin)
    # Always a Redis of its own: profiling writes sessions under the default key prefix.
    redis = redis_tools.start(None, pin=servers.pin_prefix(cpus.redis))
    work_dir = Path(tempfile.mkdtemp(prefix="sharedsession-bench-profile-"))
    try:
        profiles = [
            profile.profile_one(
                fw,
                name,
                variant_name=v,
                redis=redis,
                duration_s=max(args.duration, 5),
                connections=args.connections,
                cpus=cpus,
                work_dir=work_dir,
            )
            for fw in frameworks
            for v in variants
            for name in routes
        ]
    finally:
        redis.close()
    print(profile.markdown(profiles))
    return 0

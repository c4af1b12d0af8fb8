"""Turn samples into figures: medians, ratios to the floor of the same round, targets, Markdown, a chart."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Results, Sample, Work
from bench.model import (
    COMPETITOR,
    FORGED,
    FRAMEWORK_LABELS,
    NETWORK_LABELS,
    NETWORKS,
    ROUTES,
    SHAPE_LABELS,
    SHAPES,
    TINY_ONLY,
    Framework,
    Network,
    Shape,
    route,
    variant,
)

# Browsers keep a cookie of at most this many bytes (name, value and attributes).
COOKIE_LIMIT = 4096


@dataclass(frozen=True)
class Target:
    """Issue 13's targets: ``ours`` over ``versus`` (req/s, paired round by round) at least ``goal``."""

    ours: str  # variant name
    versus: str  # "competitor" (Flask-Session, starsessions) or a variant name ("cookie")
    route: str
    shape: Shape
    goal: float

    def versus_name(self, framework: Framework) -> str:
        return COMPETITOR[framework] if self.versus == "competitor" else self.versus

    @property
    def what(self) -> str:
        if self.versus == "cookie":
            return f"within {100 - self.goal * 100:.0f}% of the cookie session (≥ {self.goal:g}x)"
        return f"≥ {self.goal:g}x"


TARGETS: tuple[Target, ...] = (
    # Default settings.
    Target("sharedsession", "competitor", "read", "tiny", 1.5),
    Target("sharedsession", "competitor", "write", "tiny", 1.1),
    Target("sharedsession", "competitor", "read", "realistic", 1.5),
    Target("sharedsession", "competitor", "write", "realistic", 1.5),
    # With the local cache.
    Target("sharedsession-cached", "competitor", "read", "tiny", 2.5),
    Target("sharedsession-cached", "competitor", "read", "realistic", 2.5),
    # Within 20% of the framework's own cookie session: its req/s (and so its ratio to
    # the floor of the round) at least 0.8 times the cookie session's. The cookie
    # session holds the tiny session only.
    Target("sharedsession-cached", "cookie", "read", "tiny", 0.8),
)


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        data = sorted(values)
        if not data:
            return cls(float("nan"), float("nan"), float("nan"))
        return cls(statistics.median(data), data[0], data[-1])

    @property
    def measured(self) -> bool:
        return self.median == self.median  # not nan


@dataclass(frozen=True)
class Row:
    """One variant on one route, in one network setting and session shape, over every round."""

    variant: str
    route: str
    rps: Spread
    ratio: Spread  # to the floor of the same round
    p50_ms: float
    p99_ms: float
    commands: dict[str, float]  # median per command, per request
    redis_cpu_us: float
    server_cpu_us: float
    errors: int
    rounds: int
    network: str = "loopback"
    shape: str = "tiny"


def _uses_redis(key: str) -> bool:
    return variant(key).server_side


def _setting(s: Sample) -> tuple[str, str]:
    """The sample's (network, shape), as other samples are matched with it."""
    return (s.network, s.shape)


def ratios_to_floor(samples: Sequence[Sample]) -> dict[tuple[str, str, str, str, int], float]:
    """(variant, network, shape, route, round) -> req/s over the same framework's floor, that route and round.

    The floor has no session and no Redis: it is measured once per round and route, and
    every network setting and session shape is compared with it.
    """
    floor = {
        (variant(s.variant).framework, s.route, s.round): s.rps
        for s in samples
        if variant(s.variant).is_floor
    }
    out: dict[tuple[str, str, str, str, int], float] = {}
    for s in samples:
        base = floor.get((variant(s.variant).framework, s.route, s.round))
        if base:
            out[(s.variant, s.network, s.shape, s.route, s.round)] = s.rps / base
    return out


def paired_ratio(
    samples: Sequence[Sample],
    numerator: str,
    denominator: str,
    route_name: str,
    *,
    network: str = "loopback",
    shape: str = "tiny",
) -> Spread:
    """req/s of one variant over another's, round by round (both measured in the same round).

    Both in the given network setting and session shape; a variant that uses no Redis
    (the cookie session) is the same on any network, and measured on loopback only.
    """
    num_network = network if _uses_redis(numerator) else "loopback"
    den_network = network if _uses_redis(denominator) else "loopback"
    by_round: dict[int, dict[str, float]] = defaultdict(dict)
    for s in samples:
        if s.route != route_name or s.shape != shape:
            continue
        if s.variant == numerator and s.network == num_network:
            by_round[s.round]["n"] = s.rps
        elif s.variant == denominator and s.network == den_network:
            by_round[s.round]["d"] = s.rps
    return Spread.of(r["n"] / r["d"] for r in by_round.values() if r.get("d") and "n" in r)


def rows(samples: Sequence[Sample], order: Sequence[str] = ()) -> list[Row]:
    """One row per variant, network, shape and route; ``order``: the variants' order (default: as seen)."""
    ratios = ratios_to_floor(samples)
    groups: dict[tuple[str, str, str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.variant, s.network, s.shape, s.route)].append(s)
    out: list[Row] = []
    for (v, net, shape, r), group in groups.items():
        names = sorted({name for s in group for name in s.commands})
        keyed = [(v, net, shape, r, s.round) for s in group]
        out.append(
            Row(
                variant=v,
                route=r,
                rps=Spread.of(s.rps for s in group),
                ratio=Spread.of(ratios[k] for k in keyed if k in ratios),
                p50_ms=statistics.median(s.p50_ms for s in group),
                p99_ms=statistics.median(s.p99_ms for s in group),
                commands={n: statistics.median(s.commands.get(n, 0.0) for s in group) for n in names},
                redis_cpu_us=statistics.median(s.redis_cpu_us for s in group),
                server_cpu_us=statistics.median(s.server_cpu_us for s in group),
                errors=sum(s.errors for s in group),
                rounds=len(group),
                network=net,
                shape=shape,
            )
        )
    keys = list(dict.fromkeys([*order, *(s.variant for s in samples)]))
    position: dict[tuple[str, str, str, str], int] = {}
    for net in NETWORKS:
        for shape in SHAPES:
            for v in keys:
                for rt in ROUTES:
                    position[(v, net, shape, rt.name)] = len(position)
    return sorted(out, key=lambda row: position.get((row.variant, row.network, row.shape, row.route), 10**6))


# -- formatting -------------------------------------------------------------------------


def fmt_counts(counts: Mapping[str, float], *, upper: bool = False) -> str:
    """``1 EVALSHA load + 1 GET``; ``0`` when empty. Per-request rates under 0.005 are dropped."""
    shown = [(n, c) for n, c in counts.items() if c >= 0.005]
    if not shown:
        return "0"
    parts = [f"{_num(c)} {n.upper() if upper else n}" for n, c in sorted(shown, key=lambda x: (-x[1], x[0]))]
    return " + ".join(parts)


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.005 else f"{x:.2f}"


def total(counts: Mapping[str, float]) -> float:
    return sum(c for c in counts.values() if c >= 0.005)


def _table(header: Sequence[str], body: Iterable[Sequence[str]], align: str = "") -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    aligns = align or ("l" + "r" * (len(header) - 1))
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in aligns) + "|")
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _frameworks(results: Results) -> list[Framework]:
    seen: list[Framework] = []
    for key in results.meta.get("variants", []):
        fw = variant(key).framework
        if fw not in seen:
            seen.append(fw)
    return seen


def _networks(results: Results) -> list[Network]:
    present = {s.network for s in results.samples}
    return [n for n in NETWORKS if n in present]


def _shapes(results: Results) -> list[Shape]:
    present = {s.shape for s in results.samples}
    return [s for s in SHAPES if s in present]


# -- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    framework: Framework
    network: Network
    target: Target
    ours: str  # variant keys
    versus: str
    ratio: Spread
    why: str  # for a miss: the figures that explain it; "" when met

    @property
    def met(self) -> bool:
        return self.ratio.median >= self.target.goal


def _work(results: Results, key: str, shape: str, route_name: str) -> Work | None:
    for w in results.work:
        if w.variant == key and w.shape == shape and w.route == route_name:
            return w
    return None


def _row(all_rows: Sequence[Row], key: str, network: str, shape: str, route_name: str) -> Row | None:
    network = network if _uses_redis(key) else "loopback"
    for r in all_rows:
        if (r.variant, r.network, r.shape, r.route) == (key, network, shape, route_name):
            return r
    return None


def _explain(results: Results, all_rows: Sequence[Row], v: Verdict) -> str:
    """The figures behind a miss: time per request allowed and taken, app CPU, round trips."""
    t = v.target
    ours = _row(all_rows, v.ours, v.network, t.shape, t.route)
    theirs = _row(all_rows, v.versus, v.network, t.shape, t.route)
    if ours is None or theirs is None or not ours.rps.median or not theirs.rps.median:
        return ""
    taken = 1e6 / ours.rps.median
    allowed = 1e6 / theirs.rps.median / t.goal
    trips = []
    for key in (v.ours, v.versus):
        w = _work(results, key, t.shape, t.route)
        trips.append(_num(w.round_trips) if w is not None else "?")
    name = "cookie session" if t.versus == "cookie" else "theirs"
    why = (
        f"needs ≤ {allowed:.0f} µs per request ({name} {1e6 / theirs.rps.median:.0f} / {t.goal:g}), "
        f"takes {taken:.0f}; app CPU {ours.server_cpu_us:.0f} vs {theirs.server_cpu_us:.0f} µs/req, "
        f"round trips {trips[0]} vs {trips[1]}"
    )
    if t.versus != "cookie":
        # What a session that costs no round trip at all reaches against the same competitor.
        cookie = paired_ratio(
            results.samples,
            f"{v.framework}/cookie",
            v.versus,
            t.route,
            network=v.network,
            shape=t.shape,
        )
        if cookie.measured:
            why += f"; the cookie session (no Redis) makes {cookie.median:.2f}x"
    return why


def verdicts(results: Results) -> list[Verdict]:
    """Every target that was measured, per framework and network setting (in that order)."""
    all_rows = rows(results.samples, results.meta.get("variants", []))
    builds = [f"@{b}" for b in results.meta.get("builds", {})]
    out: list[Verdict] = []
    for framework in _frameworks(results):
        for network in _networks(results):
            for t in TARGETS:
                versus = f"{framework}/{t.versus_name(framework)}"
                for tag in ["", *builds] if t.ours == "sharedsession" else [""]:
                    ours = f"{framework}/{t.ours}{tag}"
                    spread = paired_ratio(
                        results.samples, ours, versus, t.route, network=network, shape=t.shape
                    )
                    if not spread.measured:
                        continue
                    v = Verdict(framework, network, t, ours, versus, spread, "")
                    if not v.met:
                        v = Verdict(
                            framework, network, t, ours, versus, spread, _explain(results, all_rows, v)
                        )
                    out.append(v)
    return out


def targets_table(results: Results) -> list[str]:
    body: list[list[str]] = []
    for v in verdicts(results):
        t = v.target
        r = v.ratio
        verdict = "met" if v.met else f"**not met** ({(r.median / t.goal - 1) * 100:+.0f}%): {v.why}"
        body.append(
            [
                FRAMEWORK_LABELS[v.framework].split(" (")[0],
                t.shape,
                v.network,
                f"{variant(v.ours).label.split(' (')[0]} vs {variant(v.versus).label}",
                f"`{route(t.route).path}`",
                f"{r.median:.2f}x ({r.low:.2f}-{r.high:.2f})",
                t.what,
                verdict,
            ]
        )
    if not body:
        return []
    return _table(
        [
            "framework",
            "session",
            "network",
            "sharedsession vs",
            "route",
            "req/s ratio, median (min-max)",
            "target",
            "",
        ],
        body,
        "llllllrl",
    )


def summary_table(results: Results) -> list[str]:
    """The headline: per framework, network setting, session shape and route (/read, /write),
    sharedsession and sharedsession-cached over the competitor (paired per round), and every
    variant's ratio to the floor (medians)."""
    all_rows = rows(results.samples, results.meta.get("variants", []))
    body: list[list[str]] = []

    def floor_ratio(key: str, network: str, shape: str, name: str) -> str:
        row = _row(all_rows, key, network, shape, name)
        return f"{row.ratio.median:.2f}" if row is not None and row.ratio.measured else "-"

    def paired(key: str, versus: str, network: str, shape: str, name: str) -> str:
        spread = paired_ratio(results.samples, key, versus, name, network=network, shape=shape)
        return f"{spread.median:.2f}x" if spread.measured else "-"

    for framework in _frameworks(results):
        competitor = f"{framework}/{COMPETITOR[framework]}"
        ours, cached, cookie = (
            f"{framework}/{n}" for n in ("sharedsession", "sharedsession-cached", "cookie")
        )
        for network in _networks(results):
            for shape in _shapes(results):
                for name in ("read", "write"):
                    if _row(all_rows, competitor, network, shape, name) is None:
                        continue
                    body.append(
                        [
                            FRAMEWORK_LABELS[framework].split(" (")[0],
                            network,
                            shape,
                            f"`{route(name).path}`",
                            paired(ours, competitor, network, shape, name),
                            paired(cached, competitor, network, shape, name),
                            " / ".join(
                                floor_ratio(k, network, shape, name)
                                for k in (ours, cached, competitor, cookie)
                            ),
                        ]
                    )
    if not body:
        return []
    return _table(
        [
            "framework",
            "network",
            "session",
            "route",
            "sharedsession ÷ competitor",
            "sharedsession-cached ÷ competitor",
            "x floor: sharedsession / cached / competitor / cookie session",
        ],
        body,
        "llllrrr",
    )


def targets_summary(results: Results) -> str:
    found = verdicts(results)
    met = sum(1 for v in found if v.met)
    return f"{met} of {len(found)} targets met" if found else "no target measured"


def cookie_note(results: Results) -> str:
    """Why the cookie sessions run with the tiny session only, from the cookie sizes measured."""
    big = [f for f in results.footprints if variant(f.variant).name in TINY_ONLY and f.shape == "realistic"]
    if not big:
        return ""
    sizes = ", ".join(f"{f.cookie_bytes:,} bytes ({variant(f.variant).label})" for f in big)
    over = all(f.cookie_bytes > COOKIE_LIMIT for f in big)
    return (
        f"The cookie sessions run with the tiny session only: the realistic one makes a cookie of {sizes}"
        + (f", over the {COOKIE_LIMIT:,} bytes browsers keep." if over else ".")
    )


# -- tables -----------------------------------------------------------------------------


def throughput_table(results: Results, framework: Framework, network: str = "", shape: str = "") -> list[str]:
    """Rows of one framework; with ``network`` and ``shape``, of that setting only.

    The variants without Redis (the floor, the cookie session) are measured once, on
    loopback with the tiny session; another setting's table lists them (marked †) on the
    routes it has, as what its ratios are taken to.
    """
    body: list[list[str]] = []
    all_rows = [
        r
        for r in rows(results.samples, results.meta.get("variants", []))
        if variant(r.variant).framework == framework
    ]
    errors = any(r.errors for r in all_rows)
    primary = not (network and shape) or (network == "loopback" and shape == "tiny")
    if network and shape:
        here = [r for r in all_rows if (r.network, r.shape) == (network, shape)]
        routes_here = {r.route for r in here}
        borrowed = [
            r
            for r in all_rows
            if not primary
            and not variant(r.variant).server_side
            and r.route in routes_here
            and (variant(r.variant).is_floor or r.shape == shape)
        ]
        all_rows = sorted(borrowed, key=lambda r: not variant(r.variant).is_floor) + [
            r for r in here if variant(r.variant).server_side or primary
        ]
    for row in all_rows:
        v = variant(row.variant)
        ratio = (
            "1 (floor)"
            if v.is_floor
            else f"{row.ratio.median:.2f} ({row.ratio.low:.2f}-{row.ratio.high:.2f})"
        )
        label = v.label + (" †" if not v.server_side and not primary else "")
        body.append(
            [
                label,
                route(row.route).label,
                f"{row.rps.median:,.0f} ({row.rps.low:,.0f}-{row.rps.high:,.0f})",
                ratio,
                f"{row.p50_ms:.2f} / {row.p99_ms:.2f}",
                f"{row.server_cpu_us:.0f}",
                fmt_counts(row.commands),
                f"{row.redis_cpu_us:.1f}",
            ]
            + ([f"{row.errors}"] if errors else [])
        )
    header = [
        "variant",
        "route",
        "req/s median (min-max)",
        "x floor, median (min-max)",
        "p50 / p99 ms",
        "app CPU µs/req",
        "Redis commands run per request (INFO commandstats)",
        "Redis CPU µs/req",
    ]
    if errors:
        header.append("errors")
    return _table(header, body, "ll" + "r" * (len(header) - 2))


def work_table(results: Results, framework: Framework) -> list[str]:
    body: list[list[str]] = []
    order = [*ROUTES, FORGED]
    works: dict[tuple[str, str, str], Work] = {(w.variant, w.shape, w.route): w for w in results.work}
    for v_key in [k for k in results.meta.get("variants", []) if variant(k).framework == framework]:
        v = variant(v_key)
        if v.is_floor:
            continue
        for shape in SHAPES:
            for r in order:
                w = works.get((v_key, shape, r.name))
                if w is None:
                    continue
                body.append(
                    [
                        v.label,
                        shape,
                        r.label,
                        _num(w.round_trips),
                        fmt_counts(w.sent),
                        f"{w.bytes_sent:,.0f} / {w.bytes_received:,.0f}",
                        _num(w.fields_written) if v.name.startswith("sharedsession") else "-",
                        f"{_num(total(w.run))}: {fmt_counts(w.run)}" if w.run else "0",
                    ]
                    + ([str(w.failed)] if w.failed else [""])
                )
    header = [
        "variant",
        "session",
        "route",
        "round trips",
        "commands sent",
        "bytes sent / received",
        "fields written",
        "commands Redis ran (incl. inside scripts)",
        "4xx/5xx",
    ]
    return _table(header, body, "lllrlrrll")


def footprint_table(results: Results) -> list[str]:
    body: list[list[str]] = []
    for f in results.footprints:
        v = variant(f.variant)
        body.append(
            [
                v.label,
                f.shape,
                f"{f.memory_bytes:,}" if f.key else "-",
                str(f.key_bytes) if f.key else "-",
                f"{f.payload_bytes:,}" if f.key else "-",
                f"{f.cookie_bytes:,}",
            ]
        )
    return _table(
        [
            "variant",
            "session",
            "MEMORY USAGE (bytes)",
            "of which key name",
            "stored value",
            "cookie sent back (bytes)",
        ],
        body,
        "llrrrr",
    )


def lost_table(results: Results) -> list[str]:
    body = [
        [variant(x.variant).label, f"{x.lost} of {x.writes}", str(x.failed) if x.failed else "0"]
        for x in results.lost
    ]
    return _table(["variant", "lost updates", "failed requests"], body)


def delay_lines(meta: Mapping[str, Any]) -> list[str]:
    """What the delay line added, as measured (for the Markdown and the console)."""
    d = meta.get("delay")
    if not d:
        return []
    out = [
        f"- Delay line (`bench/delay.py`, pinned beside Redis): each chunk held {d['hold_ms']:.3f} ms in "
        f"either direction, calibrated so that a PING gains about {d['rtt_ms']:g} ms."
    ]
    for when in ("ping_before", "ping_after"):
        p = d.get(when)
        if p:
            out.append(
                f"- PING {'before' if when == 'ping_before' else 'after'} the rounds (median of {p['n']}): "
                f"{p['direct_ms']:.3f} ms straight to Redis, {p['via_ms']:.3f} ms through the line: "
                f"**+{p['added_ms']:.2f} ms per round trip**"
            )
    held = d.get("held")
    if held:
        parts = []
        for direction, label in (("up", "app→Redis"), ("down", "Redis→app")):
            h = held.get(direction)
            if h:
                parts.append(
                    f"{label}: {h['chunks']:,} chunks, median {h['p50_ms']:.3f} ms, "
                    f"p99 {h['p99_ms']:.3f} ms, max {h['max_ms']:.1f} ms"
                )
        out.append(
            "- Hold times over the whole run (when each chunk left, less when it came): " + "; ".join(parts)
        )
    return out


def markdown(results: Results, *, chart: str | None) -> str:
    meta = results.meta
    settings = meta["settings"]
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    quick = settings["rounds"] < 5
    out: list[str] = [
        "# Benchmark results",
        "",
        "Generated by `" + meta["command"] + "` (see [README.md](README.md) for the method). "
        "Every req/s figure is also given as a ratio to the same framework's floor "
        "(no session at all) measured in the same round.",
        "",
    ]
    if quick:
        out += [
            f"> **Quick run: {settings['rounds']} rounds of {settings['duration_s']} s;"
            " not for publication.**",
            "",
        ]
    elapsed = f"; the run took {meta['elapsed_s'] / 60:.0f} min" if "elapsed_s" in meta else ""
    out += [
        f"- Date: {meta['date']}; library at {meta['git']}{elapsed}",
        f"- Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['platform']}; {machine['pinning']}",
        f"- Python {machine['python']}, Redis {meta['redis']['version']} "
        f"({'started by the benchmark' if meta['redis']['owned'] else 'REDIS_URL'}), {meta['wrk']}",
        f"- Libraries: {versions}",
        f"- Load: wrk `{settings['wrk']}`, {settings['rounds']} rounds, variants interleaved in every round; "
        f"{settings['warmup_requests']} warm-up requests before each measurement",
        f"- Servers: `{meta['servers']['flask']}`; `{meta['servers']['asgi']}`",
        *(
            [
                "- Load average (1 min) before the rounds and after each: "
                + ", ".join(f"{x:g}" for x in meta["load_average"])
                + " (the benchmark itself keeps one to two CPUs busy; well above 2 means other work"
                " on the machine)"
            ]
            if meta.get("load_average")
            else []
        ),
        *delay_lines(meta),
        "",
    ]
    summary = summary_table(results)
    if summary:
        out += [
            "## Summary",
            "",
            "req/s over the competitor's (Flask-Session under Flask, starsessions under Starlette) "
            "in the same round, median over rounds; and each variant's req/s over the floor's "
            "(no session) in the same round, median. The cookie session runs with the tiny "
            "session only, and has no Redis: its figure is the same in both network settings.",
            "",
            *summary,
            "",
        ]
    targets = targets_table(results)
    if targets:
        out += [
            "## Targets",
            "",
            "Each ratio is sharedsession's req/s over the other's *in the same round*, "
            "median over rounds (min-max). For a miss, the figures behind it: the time per request "
            "the target allows (the other's 1/req/s over the goal) and the time taken, the app "
            "server's CPU per request, and round trips per request (counting pass).",
            "",
            *targets,
            "",
            f"{targets_summary(results)}.",
            "",
        ]
        note = cookie_note(results)
        if note:
            out += [note, ""]
    if chart:
        out += [f"![req/s as a ratio to the floor]({chart})", ""]
    for framework in _frameworks(results):
        if not any(variant(s.variant).framework == framework for s in results.samples):
            continue
        out += [f"## Throughput: {FRAMEWORK_LABELS[framework]}", ""]
        for network in _networks(results):
            for shape in _shapes(results):
                table = throughput_table(results, framework, network, shape)
                if len(table) <= 2:
                    continue
                out += [f"### {NETWORK_LABELS[network]}; {SHAPE_LABELS[shape]}", ""]
                if (network, shape) != ("loopback", "tiny"):
                    out += [
                        "†: no Redis and no session data to speak of, so measured once, on loopback with the "
                        "tiny session (the same figures as there), and listed here for comparison.",
                        "",
                    ]
                out += [*table, ""]
    out += [
        "## Redis work per request",
        "",
        f"Sequential requests ({settings['count_requests']} per route, after 5 warm-up requests) through a "
        "counting TCP proxy between the app and Redis (on loopback): a round trip is a turn-around on a "
        "connection (the app sends, then waits for the answer); a pipeline is one. *Commands sent* and "
        "*bytes* are parsed from the stream (the local cache's listener connection is left out); *fields "
        "written* are those sharedsession's UPDATE script sets or deletes; *commands Redis ran* are "
        "`INFO commandstats` deltas, which also count what Lua scripts run inside Redis.",
        "",
    ]
    for framework in _frameworks(results):
        out += [f"### {FRAMEWORK_LABELS[framework]}", "", *work_table(results, framework), ""]
    if results.footprints:
        out += [
            "## Bytes per session",
            "",
            "One session of each shape, made by `POST /login`: "
            "`MEMORY USAGE key SAMPLES 0` in Redis (each library's default key prefix), "
            "and the `session=...` pair the browser sends back with every request.",
            "",
            *footprint_table(results),
            "",
        ]
    if results.lost:
        out += [
            "## Lost updates",
            "",
            f"{settings['lost_writes']} concurrent `POST /kv/<key>` (each its own key) in one session, "
            "alternating between two replicas (two servers, one Redis); then the session is read back "
            "with the cookie a browser would hold (the last Set-Cookie received).",
            "",
            *lost_table(results),
            "",
        ]
    return "\n".join(out)


# -- chart ------------------------------------------------------------------------------

COLOURS = {
    "sharedsession": "#1b7837",
    "sharedsession-cached": "#00441b",
    "sharedsession-enc": "#5aae61",
    "cookie": "#9e9e9e",
    "flask-session": "#d6604d",
    "starsessions": "#4393c3",
}


def chart(results: Results, path: Path) -> bool:
    """A PNG of req/s as a ratio to the floor: a panel per framework and network setting,
    /read and /write of each session shape. False if matplotlib is missing."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    all_rows = rows(results.samples, results.meta.get("variants", []))
    frameworks = [
        fw for fw in _frameworks(results) if any(variant(r.variant).framework == fw for r in all_rows)
    ]
    networks = _networks(results)
    if not frameworks or not networks:
        return False
    groups = [
        (shape, name)
        for shape in _shapes(results)
        for name in ("read", "write")
        if any(r.shape == shape and r.route == name for r in all_rows)
    ]
    fig, axes = plt.subplots(
        len(frameworks), len(networks), figsize=(6.2 * len(networks), 3.9 * len(frameworks)), squeeze=False
    )
    top = max(
        [
            1.1,
            *(
                r.ratio.high * 1.08
                for r in all_rows
                if r.ratio.measured and not variant(r.variant).is_floor and (r.shape, r.route) in groups
            ),
        ]
    )
    for i, framework in enumerate(frameworks):
        shown = [
            k
            for k in results.meta["variants"]
            if variant(k).framework == framework and not variant(k).is_floor
        ]
        width = 0.8 / max(1, len(shown))
        for j, network in enumerate(networks):
            ax = axes[i][j]
            for n, key in enumerate(shown):
                xs, ys, lo, hi = [], [], [], []
                for g, (shape, name) in enumerate(groups):
                    row = _row(all_rows, key, network, shape, name)
                    if row is None or not row.ratio.measured:
                        continue
                    xs.append(g + (n - (len(shown) - 1) / 2) * width)
                    ys.append(row.ratio.median)
                    lo.append(row.ratio.median - row.ratio.low)
                    hi.append(row.ratio.high - row.ratio.median)
                ax.bar(
                    xs,
                    ys,
                    width,
                    yerr=[lo, hi],
                    capsize=2,
                    label=variant(key).label,
                    color=COLOURS.get(variant(key).name, "#777777"),
                    alpha=0.45 if variant(key).build else 1.0,
                )
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([f"{route(name).path}\n{shape}" for shape, name in groups], fontsize=8)
            ax.set_ylim(0, top)
            ax.set_ylabel("req/s ÷ floor (same round)", fontsize=8)
            ax.set_title(
                f"{FRAMEWORK_LABELS[framework]}\n{NETWORK_LABELS[network]}: median, whiskers min-max",
                fontsize=9,
            )
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Session libraries, throughput relative to no session ({results.meta['date']})", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(results: Results, out_dir: Path, *, with_chart: bool = True) -> list[Path]:
    """results.json, results.md and (with matplotlib) results.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.json"]
    written[0].write_text(results.to_json())
    png = out_dir / "results.png"
    has_chart = with_chart and chart(results, png)
    if has_chart:
        written.append(png)
    md = out_dir / "results.md"
    md.write_text(markdown(results, chart=png.name if has_chart else None))
    written.append(md)
    return written

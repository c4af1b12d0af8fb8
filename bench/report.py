"""Turn samples into figures: medians, ratios to the floor of the same round, Markdown, a chart."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Results, Sample, Work
from bench.model import COMPETITOR, FORGED, FRAMEWORK_LABELS, ROUTES, Framework, route, variant

# The targets: sharedsession's req/s over its competitor's, same framework, same round.
TARGETS: Mapping[str, float] = {"read": 1.5, "write": 1.3}


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


@dataclass(frozen=True)
class Row:
    """One variant on one route, over every round."""

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


def ratios_to_floor(samples: Sequence[Sample]) -> dict[tuple[str, str, int], float]:
    """(variant, route, round) -> req/s divided by the same framework's floor on that route, that round."""
    floor = {
        (variant(s.variant).framework, s.route, s.round): s.rps
        for s in samples
        if variant(s.variant).is_floor
    }
    out: dict[tuple[str, str, int], float] = {}
    for s in samples:
        base = floor.get((variant(s.variant).framework, s.route, s.round))
        if base:
            out[(s.variant, s.route, s.round)] = s.rps / base
    return out


def paired_ratio(samples: Sequence[Sample], numerator: str, denominator: str, route_name: str) -> Spread:
    """req/s of one variant over another's, round by round (both measured in the same round)."""
    by_round: dict[int, dict[str, float]] = defaultdict(dict)
    for s in samples:
        if s.route == route_name and s.variant in (numerator, denominator):
            by_round[s.round][s.variant] = s.rps
    return Spread.of(
        r[numerator] / r[denominator] for r in by_round.values() if r.get(denominator) and numerator in r
    )


def rows(samples: Sequence[Sample], order: Sequence[str] = ()) -> list[Row]:
    """One row per variant and route; ``order``: the variants' order (default: as first seen)."""
    ratios = ratios_to_floor(samples)
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.variant, s.route)].append(s)
    out: list[Row] = []
    for (v, r), group in groups.items():
        names = sorted({name for s in group for name in s.commands})
        out.append(
            Row(
                variant=v,
                route=r,
                rps=Spread.of(s.rps for s in group),
                ratio=Spread.of(ratios[(v, r, s.round)] for s in group if (v, r, s.round) in ratios),
                p50_ms=statistics.median(s.p50_ms for s in group),
                p99_ms=statistics.median(s.p99_ms for s in group),
                commands={n: statistics.median(s.commands.get(n, 0.0) for s in group) for n in names},
                redis_cpu_us=statistics.median(s.redis_cpu_us for s in group),
                server_cpu_us=statistics.median(s.server_cpu_us for s in group),
                errors=sum(s.errors for s in group),
                rounds=len(group),
            )
        )
    keys = list(dict.fromkeys([*order, *(s.variant for s in samples)]))
    position = {key: i for i, key in enumerate((v, r.name) for v in keys for r in ROUTES)}
    return sorted(out, key=lambda row: position.get((row.variant, row.route), 10**6))


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


def targets_table(results: Results) -> list[str]:
    body: list[list[str]] = []
    builds = list(results.meta.get("builds", {}))
    for framework in _frameworks(results):
        competitor = f"{framework}/{COMPETITOR[framework]}"
        for ours, (route_name, goal) in (
            (f"{framework}/sharedsession{tag}", target)
            for tag in ["", *(f"@{b}" for b in builds)]
            for target in TARGETS.items()
        ):
            spread = paired_ratio(results.samples, ours, competitor, route_name)
            if spread.median != spread.median:  # nan: not measured
                continue
            met = spread.median >= goal
            verdict = "met" if met else f"**not met** ({(spread.median / goal - 1) * 100:+.0f}%)"
            body.append(
                [
                    f"{variant(ours).label} vs {variant(competitor).label}",
                    f"`{route(route_name).path}`",
                    f"{spread.median:.2f}x ({spread.low:.2f}-{spread.high:.2f})",
                    f"≥ {goal}x",
                    verdict,
                ]
            )
    if not body:
        return []
    return _table(["sharedsession vs", "route", "req/s ratio, median (min-max)", "target", ""], body, "llrrl")


def _frameworks(results: Results) -> list[Framework]:
    seen: list[Framework] = []
    for key in results.meta.get("variants", []):
        fw = variant(key).framework
        if fw not in seen:
            seen.append(fw)
    return seen


def throughput_table(results: Results, framework: Framework) -> list[str]:
    body: list[list[str]] = []
    all_rows = rows(results.samples, results.meta.get("variants", []))
    errors = any(r.errors for r in all_rows)
    for row in all_rows:
        v = variant(row.variant)
        if v.framework != framework:
            continue
        ratio = (
            "1 (floor)"
            if v.is_floor
            else f"{row.ratio.median:.2f} ({row.ratio.low:.2f}-{row.ratio.high:.2f})"
        )
        body.append(
            [
                v.label,
                route(row.route).label,
                f"{row.rps.median:,.0f} ({row.rps.low:,.0f}-{row.rps.high:,.0f})",
                ratio,
                f"{row.p50_ms:.2f} / {row.p99_ms:.2f}",
                f"{row.server_cpu_us:.0f}",
                fmt_counts(row.commands),
                f"{row.redis_cpu_us:.0f}",
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
    works: dict[tuple[str, str], Work] = {(w.variant, w.route): w for w in results.work}
    for v_key in [k for k in results.meta.get("variants", []) if variant(k).framework == framework]:
        v = variant(v_key)
        if v.is_floor:
            continue
        for r in order:
            w = works.get((v_key, r.name))
            if w is None:
                continue
            body.append(
                [
                    v.label,
                    r.label,
                    _num(w.round_trips),
                    fmt_counts(w.sent),
                    f"{_num(total(w.run))}: {fmt_counts(w.run)}" if w.run else "0",
                ]
                + ([str(w.failed)] if w.failed else [""])
            )
    header = [
        "variant",
        "route",
        "round trips",
        "commands sent",
        "commands Redis ran (incl. inside scripts)",
        "4xx/5xx",
    ]
    return _table(header, body, "llrlll")


def footprint_table(results: Results) -> list[str]:
    body: list[list[str]] = []
    for f in results.footprints:
        v = variant(f.variant)
        body.append(
            [
                v.label,
                str(f.memory_bytes) if f.key else "-",
                str(f.key_bytes) if f.key else "-",
                str(f.payload_bytes) if f.key else "-",
                str(f.cookie_bytes),
            ]
        )
    return _table(
        ["variant", "MEMORY USAGE (bytes)", "of which key name", "stored value", "cookie sent back (bytes)"],
        body,
    )


def lost_table(results: Results) -> list[str]:
    body = [
        [variant(x.variant).label, f"{x.lost} of {x.writes}", str(x.failed) if x.failed else "0"]
        for x in results.lost
    ]
    return _table(["variant", "lost updates", "failed requests"], body)


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
    out += [
        f"- Date: {meta['date']}; library at {meta['git']}",
        f"- Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['platform']}; {machine['pinning']}",
        f"- Python {machine['python']}, Redis {meta['redis']['version']} "
        f"({'started by the benchmark' if meta['redis']['owned'] else 'REDIS_URL'}), {meta['wrk']}",
        f"- Libraries: {versions}",
        f"- Load: wrk `{settings['wrk']}`, {settings['rounds']} rounds, variants interleaved in every round; "
        f"{settings['warmup_requests']} warm-up requests before each measurement",
        f"- Servers: `{meta['servers']['flask']}`; `{meta['servers']['asgi']}`",
        "",
    ]
    targets = targets_table(results)
    if targets:
        out += ["## Targets", "", *targets, ""]
    if chart:
        out += [f"![req/s as a ratio to the floor]({chart})", ""]
    for framework in _frameworks(results):
        if any(variant(s.variant).framework == framework for s in results.samples):
            out += [
                f"## Throughput: {FRAMEWORK_LABELS[framework]}",
                "",
                *throughput_table(results, framework),
                "",
            ]
    out += [
        "## Redis work per request",
        "",
        f"Sequential requests ({settings['count_requests']} per route, after 5 warm-up requests) through a "
        "counting TCP proxy between the app and Redis: a round trip is a turn-around on a connection "
        "(the app sends, then waits for the answer); a pipeline is one. *Commands sent* are parsed from "
        "the app's side of the stream; *commands Redis ran* are `INFO commandstats` deltas, which also count "
        "what Lua scripts run inside Redis.",
        "",
    ]
    for framework in _frameworks(results):
        out += [f"### {FRAMEWORK_LABELS[framework]}", "", *work_table(results, framework), ""]
    if results.footprints:
        out += [
            "## Bytes per session",
            "",
            'One session holding `{"user": "alice", "n": 5}`, made by `POST /login`: '
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


def chart(results: Results, path: Path) -> bool:
    """A PNG of req/s as a ratio to the floor, per framework and route. False if matplotlib is missing."""
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
    if not frameworks:
        return False
    route_names = [r.name for r in ROUTES if any(row.route == r.name for row in all_rows)]
    fig, axes = plt.subplots(len(frameworks), 1, figsize=(10, 3.6 * len(frameworks)), squeeze=False)
    colours = {
        "sharedsession": "#1b7837",
        "sharedsession-enc": "#5aae61",
        "cookie": "#9e9e9e",
        "flask-session": "#d6604d",
        "starsessions": "#4393c3",
    }
    for ax, framework in zip((a[0] for a in axes), frameworks, strict=True):
        shown = [
            k
            for k in results.meta["variants"]
            if variant(k).framework == framework and not variant(k).is_floor
        ]
        width = 0.8 / max(1, len(shown))
        for i, key in enumerate(shown):
            xs, ys, lo, hi = [], [], [], []
            for j, name in enumerate(route_names):
                row = next((r for r in all_rows if r.variant == key and r.route == name), None)
                if row is None:
                    continue
                xs.append(j + (i - (len(shown) - 1) / 2) * width)
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
                color=colours.get(variant(key).name, "#777777"),
                alpha=0.45 if variant(key).build else 1.0,
            )
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(route_names)))
        ax.set_xticklabels([route(n).label for n in route_names], fontsize=8)
        tops = [r.ratio.high for r in all_rows if variant(r.variant).framework == framework]
        ax.set_ylim(0, max([1.1, *(t * 1.05 for t in tops if t == t)]))
        ax.set_ylabel("req/s ÷ floor (same round)")
        ax.set_title(FRAMEWORK_LABELS[framework] + ": median, whiskers min-max", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"Session libraries, throughput relative to no session ({results.meta['date']})", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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

"""The benchmark harness (bench/): its pure parts always, and one tiny real run where wrk exists.

Benchmarks are not tests: nothing here checks a speed. It checks that
``python -m bench`` still works: wrk's summary is parsed, Redis work is
counted right, ratios are taken to the floor of the same round, and the
Markdown is written. The real run (one route, Flask, one second) needs wrk
and redis-server (CI installs both).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bench import http, proxy, redis_tools, report, sealing, wrk
from bench.harness import Bench, Footprint, Lost, Options, Results, Sample, Work
from bench.model import forge, variant

from sharedsession._core import scripts

# -- wrk ------------------------------------------------------------------------------


def test_wrk_summary_is_read_from_the_lua_hook() -> None:
    output = (
        "Running 3s test @ http://127.0.0.1:8000/read\n"
        "  1 threads and 8 connections\n"
        f'{wrk.MARKER}{{"requests":9000,"duration_us":3000000,"p50_us":1250,"p99_us":4100,'
        '"connect":0,"read":1,"write":0,"status":2,"timeout":0}\n'
        "Requests/sec:   3000.00\n"
    )
    result = wrk.parse(output)
    assert result.requests == 9000
    assert result.rps == pytest.approx(3000)
    assert (result.p50_ms, result.p99_ms) == (1.25, 4.1)
    assert result.errors == 3


def test_wrk_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(ValueError, match="no wrk summary"):
        wrk.parse("Running 3s test @ http://127.0.0.1:8000/\n")


def test_wrk_script_sets_method_and_cookie() -> None:
    script = wrk.lua_script("POST", 'session=a.b"c')
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Content-Length"] = "0"' in script
    assert 'wrk.headers["Cookie"] = "session=a.b\\"c"' in script
    assert wrk.MARKER in script
    assert "Cookie" not in wrk.lua_script("GET", None)


def test_wrk_command_line() -> None:
    argv = wrk.command("wrk", "http://h/x", Path("s.lua"), duration_s=3, threads=1, connections=8)
    assert argv == ["wrk", "-t1", "-c8", "-d3s", "--timeout", "5s", "-s", "s.lua", "http://h/x"]


# -- Redis accounting -------------------------------------------------------------------


def test_commandstats_deltas_per_request_leave_out_the_harness() -> None:
    before = redis_tools.Snapshot(
        redis_tools.parse_commandstats(
            {"cmdstat_get": {"calls": 10, "usec": 5}, "cmdstat_info": {"calls": 3}, "uptime": 7}
        ),
        cpu_s=1.0,
    )
    after = redis_tools.Snapshot(
        redis_tools.parse_commandstats(
            {
                "cmdstat_get": {"calls": 110},
                "cmdstat_evalsha": {"calls": 100},
                "cmdstat_client|setinfo": {"calls": 2},
                "cmdstat_info": {"calls": 5},
            }
        ),
        cpu_s=1.5,
    )
    usage = redis_tools.delta(before, after)
    assert usage.calls == {"client|setinfo": 2, "evalsha": 100, "get": 100}
    assert usage.per_request(100) == {"client|setinfo": 0.02, "evalsha": 1.0, "get": 1.0}
    assert usage.cpu_s == pytest.approx(0.5)
    assert usage.per_request(0) == {}


def test_resp_commands_are_parsed_across_chunks_and_pipelines() -> None:
    parser = proxy.RespCommands()
    wire = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nPING\r\n"
    found: list[list[bytes]] = []
    for i in range(0, len(wire), 5):  # arbitrary TCP segments
        found += parser.feed(wire[i : i + 5])
    assert found == [[b"GET", b"k"], [b"SET", b"k", b"v1"], [b"PING"]]


def test_command_names_name_our_scripts() -> None:
    known = proxy.known_scripts()
    load = [b"EVALSHA", scripts.LOAD.sha.encode(), b"1", b"key"]
    assert proxy.command_name(load, known) == "EVALSHA load"
    assert proxy.command_name([b"evalsha", b"0" * 40], known) == "EVALSHA script"
    assert proxy.command_name([b"client", b"setinfo", b"lib-name"], known) == "CLIENT SETINFO"
    assert proxy.command_name([b"get", b"k"], known) == "GET"


def test_proxy_count_differences() -> None:
    before = proxy.Count(3, {"GET": 3})
    after = proxy.Count(5, {"GET": 4, "SET": 1})
    assert after.minus(before) == proxy.Count(2, {"GET": 1, "SET": 1})


# -- the rest of the pure parts ---------------------------------------------------------


def test_forged_cookie_has_the_same_shape() -> None:
    assert forge("abc.def") == "Abc.def"
    assert forge("Abc") == "Bbc"
    assert len(forge("x" * 90)) == 90


def test_variants_of_other_builds() -> None:
    v = variant("asgi/sharedsession@before")
    assert (v.framework, v.name, v.build, v.key) == (
        "asgi",
        "sharedsession",
        "before",
        "asgi/sharedsession@before",
    )
    assert v.label.endswith("[before]")
    assert variant("flask/none").is_floor
    with pytest.raises(KeyError):
        variant("flask/nothing")


def test_session_cookie_of_a_reply() -> None:
    set_cookie = http.Reply(200, b"", ("other=1; Path=/", "session=abc.def; HttpOnly; Path=/; Max-Age=60"))
    assert set_cookie.session_cookie() == "session=abc.def"
    expired = http.Reply(200, b"", ('session=""; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/',))
    assert expired.session_cookie() is None
    assert http.Reply(200, b"", ()).session_cookie() is None


def _sample(round_: int, key: str, route: str, rps: float) -> Sample:
    return Sample(round_, key, route, rps, 1.0, 2.0, int(rps), 0, {"evalsha": 1.0}, 30.0)


def _results() -> Results:
    samples = []
    for r, (floor, ours, theirs) in enumerate([(1000, 600, 300), (2000, 1000, 800), (1500, 900, 500)]):
        samples += [
            _sample(r, "flask/none", "read", floor),
            _sample(r, "flask/sharedsession", "read", ours),
            _sample(r, "flask/flask-session", "read", theirs),
        ]
    meta = {
        "date": "2026-01-01 00:00 UTC",
        "command": "python -m bench",
        "settings": {
            "duration_s": 3,
            "rounds": 3,
            "wrk": "-t1 -c8 -d3s",
            "warmup_requests": 100,
            "count_requests": 50,
            "lost_writes": 200,
        },
        "variants": ["flask/none", "flask/sharedsession", "flask/flask-session"],
        "routes": ["read"],
        "servers": {"flask": "gunicorn ...", "asgi": "uvicorn ..."},
        "machine": {"cpu": "CPU", "cpus": 2, "pinning": "not pinned", "platform": "Linux", "python": "3.11"},
        "redis": {"version": "7.0", "owned": True},
        "versions": {"sharedsession": "0.1.0"},
        "wrk": "wrk 4.1.0",
        "git": "abc1234",
    }
    return Results(
        meta=meta,
        samples=samples,
        work=[
            Work(
                "flask/sharedsession",
                "read",
                50,
                0,
                1.0,
                {"EVALSHA load": 1.0},
                {"evalsha": 1.0, "hgetall": 1.0},
            )
        ],
        footprints=[Footprint("flask/sharedsession", "sharedsession:s:x", 120, 48, 31, 102)],
        lost=[Lost("flask/sharedsession", 200, 200, 0), Lost("flask/flask-session", 200, 150, 0)],
    )


def test_ratios_are_taken_to_the_floor_of_the_same_round() -> None:
    results = _results()
    ratios = report.ratios_to_floor(results.samples)
    assert ratios[("flask/sharedsession", "read", 0)] == pytest.approx(0.6)
    assert ratios[("flask/sharedsession", "read", 1)] == pytest.approx(0.5)
    (row,) = [r for r in report.rows(results.samples) if r.variant == "flask/sharedsession"]
    assert (row.rps.median, row.rps.low, row.rps.high) == (900, 600, 1000)
    assert (row.ratio.median, row.ratio.low, row.ratio.high) == pytest.approx((0.6, 0.5, 0.6))
    paired = report.paired_ratio(results.samples, "flask/sharedsession", "flask/flask-session", "read")
    assert (paired.median, paired.low, paired.high) == pytest.approx((1.8, 1.25, 2.0))


def test_markdown_has_every_table(tmp_path: Path) -> None:
    results = _results()
    text = report.markdown(results, chart="results.png")
    assert (
        "| sharedsession (Flask) vs Flask-Session (Redis) | `/read` | 1.80x (1.25-2.00) | ≥ 1.5x | met |"
        in text
    )
    assert "| sharedsession (Flask) | /read (reads one key) | 900 (600-1,000) | 0.60 (0.50-0.60) |" in text
    assert (
        "| sharedsession (Flask) | /read (reads one key) | 1 | 1 EVALSHA load | 2: 1 evalsha + 1 hgetall |"
        in text
    )
    assert "| sharedsession (Flask) | 120 | 48 | 31 | 102 |" in text
    assert "| Flask-Session (Redis) | 50 of 200 | 0 |" in text
    assert "![req/s as a ratio to the floor](results.png)" in text
    written = report.write(results, tmp_path, with_chart=False)
    assert {p.name for p in written} == {"results.json", "results.md"}
    assert Results.from_json((tmp_path / "results.json").read_text()) == results


# -- one real run -----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("wrk") is None, reason=wrk.INSTALL_HINT.splitlines()[0])
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_tiny_run_measures_counts_and_writes(tmp_path: Path) -> None:
    options = Options(
        duration_s=1,
        rounds=1,
        connections=2,
        warmup_requests=10,
        count_requests=5,
        lost_writes=20,
        frameworks=("flask",),
        variants=("sharedsession",),
        routes=("read",),
        redis_url=None,  # a redis-server of its own, as by default
    )
    results = Bench(options, log=lambda line: None).run()
    assert {(s.variant, s.route) for s in results.samples} == {
        ("flask/none", "read"),
        ("flask/sharedsession", "read"),
    }
    assert all(s.rps > 0 and s.errors == 0 for s in results.samples)
    work = {(w.variant, w.route): w for w in results.work}
    read = work[("flask/sharedsession", "read")]
    assert (read.failed, read.round_trips, read.sent) == (0, 1.0, {"EVALSHA load": 1.0})
    assert read.run["evalsha"] == 1.0
    forged = work[("flask/sharedsession", "read-forged")]
    assert (forged.round_trips, forged.sent, forged.run) == (0.0, {}, {})
    (footprint,) = results.footprints
    assert footprint.memory_bytes > footprint.payload_bytes > 0
    assert footprint.cookie_bytes > 90
    (lost,) = results.lost
    assert (lost.writes, lost.lost, lost.failed) == (20, 0, 0)
    report.write(results, tmp_path, with_chart=False)
    assert "sharedsession (Flask)" in (tmp_path / "results.md").read_text()


def test_the_sealing_measure_times_both_routes_plain_and_encrypted() -> None:
    costs = sealing.measure(n=50, runs=1)
    assert [c.route for c in costs] == ["read", "write"]
    assert all(c.plain_us > 0 and c.sealed_us > 0 for c in costs)
    text = sealing.report(costs)
    assert "| /read |" in text
    assert "| /write |" in text

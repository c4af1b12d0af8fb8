"""Running ``sharedsession doctor`` in-process, and what its ``--json`` must look like."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from sharedsession.cli import main


@dataclass
class Run:
    """One doctor run: its exit code, what it printed, and (with --json) the report."""

    code: int
    out: str
    err: str

    @property
    def report(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        assert_report_schema(document)
        return document

    @property
    def statuses(self) -> dict[str, str]:
        """Check name -> status, in the order reported."""
        return {check["name"]: check["status"] for check in self.report["checks"]}

    def check(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.report["checks"] if c["name"] == name)
        return found


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """``sharedsession doctor ARGV...`` in this process."""
    capsys.readouterr()
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return Run(code, out, err)


def assert_report_schema(document: Any) -> None:
    """What ``doctor --json`` prints (README: Admin CLI), field by field."""
    assert set(document) == {
        "redis_url",
        "mode",
        "prefix",
        "db",
        "nodes",
        "sentinels",
        "service",
        "checks",
        "summary",
        "blocking",
    }
    assert isinstance(document["redis_url"], str)
    assert document["mode"] in ("single", "cluster", "sentinel")
    assert isinstance(document["prefix"], str)
    assert document["db"] is None or isinstance(document["db"], int)
    assert all(isinstance(node, str) for node in document["nodes"])
    assert all(isinstance(sentinel, str) for sentinel in document["sentinels"])
    assert (document["service"] is None) == (document["mode"] != "sentinel")
    names = []
    for check in document["checks"]:
        assert set(check) == {"name", "status", "message", "fix", "nodes"}
        assert check["status"] in ("ok", "warn", "fail")
        assert isinstance(check["name"], str)
        assert isinstance(check["message"], str)
        assert check["message"]
        assert isinstance(check["fix"], str)
        assert check["fix"] or check["status"] == "ok", check
        for node in check["nodes"]:
            assert set(node) == {"node", "status", "message", "fix"}
            assert node["status"] in ("ok", "warn", "fail")
        names.append(check["name"])
    assert len(names) == len(set(names))
    assert set(document["summary"]) == {"ok", "warn", "fail"}
    assert sum(document["summary"].values()) == len(names)
    assert document["blocking"] == [c["name"] for c in document["checks"] if c["status"] == "fail"]

"""Pieces of the request path made cheaper for speed (bench/, docs/benchmarks/profile.md):
each must behave exactly as what it replaced. No Redis here."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import TimestampSigner

from sharedsession import Session, SessionConfig
from sharedsession._core.plan import SessionCore, _stored
from sharedsession._core.record import Record
from sharedsession._core.signing import CookieSigner, new_sid


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b'{"#v":"1","user":"\\"alice\\"","n":"5"}', {"#v": "1", "user": '"alice"', "n": "5"}),
        ('{"#v":"1","caf\\u00e9":"\\"th\\u00e9\\""}', {"#v": "1", "café": '"thé"'}),  # a str reply
        ('{"a":"\\"caf\u00e9\\""}'.encode(), {"a": '"café"'}),  # raw UTF-8, as Redis' cjson sends it
        (b"{}", {}),  # no such hash
        (b"[]", {}),  # the same, from servers whose cjson encodes an empty table as an array
        (b'{"a":1}', None),  # values are always strings
        (b'["#v","1"]', None),  # HGETALL's flat array: not what LOAD returns
        (b"\xff{}", None),  # not UTF-8
        (b"{not json", None),
        (None, None),
        (7, None),
    ],
)
def test_load_reply_is_one_json_object(reply: object, expected: dict[str, str] | None) -> None:
    assert _stored(reply) == expected


def _record() -> Record:
    return Record(
        sid="s" * 43,
        handle="h" * 32,
        created_ms=1,
        cap_ms=None,
        user_id=None,
        fields={"n": b"1"},
        fingerprint="",
        client_ip=None,
        user_agent=None,
        cookie_issued_s=1,
    )


def test_only_a_new_session_nothing_was_stored_in_needs_no_save() -> None:
    assert not SessionCore.needs_save(Session())
    stored_in = Session()
    stored_in["n"] = 1
    assert SessionCore.needs_save(stored_in)
    linked = Session()
    linked.user_id = "alice"
    assert SessionCore.needs_save(linked)
    destroyed = Session()
    destroyed.destroy()
    assert SessionCore.needs_save(destroyed)
    assert SessionCore.needs_save(Session({"n": 1}, record=_record()))


def test_loaded_sizes_are_those_of_assignments() -> None:
    loaded = Session({"n": 1, "#k": "v"}, record=_record()._replace(fields={"n": b"1", "#k": b'"v"'}))
    assigned = Session()
    assigned["n"] = 1
    assigned["#k"] = "v"
    assert (loaded._sizes, loaded._total) == (assigned._sizes, assigned._total)


class _PlainSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return 1_700_000_000


def test_cookies_are_what_itsdangerous_makes_and_reads() -> None:
    # The signer caches derived keys and decodes the timestamp itself: cookies
    # must stay exactly itsdangerous' TimestampSigner format, both ways.
    plain = _PlainSigner(
        [b"old", b"new"], salt="sharedsession.cookie", key_derivation="hmac", digest_method=hashlib.sha256
    )
    ours = CookieSigner(["new", "old"], clock=lambda: 1_700_000_000.0)
    sid = new_sid()
    value = ours.sign(sid)
    raw, stamp = plain.unsign(value, return_timestamp=True)
    assert (raw.decode(), int(stamp.timestamp())) == (sid, 1_700_000_000)
    theirs = plain.sign(sid).decode()
    assert ours.unsign(theirs, 10**10) is not None
    signed_with_old = _PlainSigner(
        b"old", salt="sharedsession.cookie", key_derivation="hmac", digest_method=hashlib.sha256
    ).sign(sid)
    assert ours.unsign(signed_with_old.decode(), 10**10) is not None
    assert ours.unsign(value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), 10**10) is None


def test_client_is_needed_only_when_binding() -> None:
    secret = "k" * 32
    assert not SessionConfig(secret_key=secret).binds
    assert SessionConfig(secret_key=secret, bind_ip="subnet").binds
    assert SessionConfig(secret_key=secret, bind_user_agent=True).binds


def test_a_view_pays_for_the_keys_it_reads_not_for_the_whole_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 keys loaded, one read and changed: one decode at the read, one encode at the
    assignment, none at save (the other 19 values stay as they came)."""
    from sharedsession._core import codec

    calls = {"decode": 0, "encode": 0}
    real_decode, real_encode = codec.decode, codec.encode

    def decode(raw: bytes | str) -> object:
        calls["decode"] += 1
        return real_decode(raw)

    def encode(value: object, *, key: str | None = None) -> bytes:
        calls["encode"] += 1
        return real_encode(value, key=key)

    fields = {f"k{i}": b'["a","b"]' for i in range(19)} | {"n": b"1"}
    session = Session(record=_record()._replace(fields=fields))
    monkeypatch.setattr(codec, "decode", decode)  # the session calls codec.decode, codec.encode
    monkeypatch.setattr(codec, "encode", encode)
    session["n"] = session["n"] + 1
    stored = session._stored_fields()
    assert calls == {"decode": 1, "encode": 1}
    assert stored == {**fields, "n": b"2"}
    session["k3"].append("c")  # a mutable value read: encoded again at save, the edit shows
    assert session._stored_fields()["k3"] == b'["a","b","c"]'
    assert calls == {"decode": 2, "encode": 2}

"""Encryption at rest in the core: the key setting, the sealed layout, and where the
planner seals and opens (driven with scripted replies: no Redis)."""

from __future__ import annotations

import base64
import logging
import os
import sys
from typing import Any

import pytest

from sharedsession import SessionConfig, SessionStore
from sharedsession._aead import AesGcm
from sharedsession._core import codec, sealing
from sharedsession._core import keys as k
from sharedsession._core.plan import SessionCore
from sharedsession._core.record import UNBOUND, State
from sharedsession._core.sealing import MARKER, Sealer, UnopenedValueError, key_id, sealer_of
from sharedsession._core.signing import CookieSigner, new_sid
from tests.support import SECRET, FakeClock
from tests.support.steps import command, hash_reply, names, run, script

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
HANDLE = "0123456789abcdef0123456789abcdef"
OTHER_HANDLE = "fedcba9876543210fedcba9876543210"
T0 = 1_700_000_000.0
NOW_MS = int(T0 * 1000)


def sealer(*keys: bytes) -> Sealer:
    return Sealer(keys or (KEY,), AesGcm)


def sealed(handle: str, field: str, raw: bytes, *keys: bytes) -> str:
    (_, text) = sealer(*keys).seal_pairs(handle, [field, raw])
    assert isinstance(text, str)
    return text


# -- the setting -------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        KEY,
        [KEY],
        (KEY,),
        base64.b64encode(KEY).decode(),  # standard alphabet, padded
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),  # URL-safe, unpadded
        " " + base64.b64encode(KEY).decode() + "\n",  # as read from a file
    ],
)
def test_keys_are_32_bytes_or_their_base64_text(given: Any) -> None:
    config = SessionConfig(secret_key=SECRET, encryption_keys=given)
    assert config.sealing_keys == (KEY,)


def test_keys_keep_their_order_newest_first() -> None:
    config = SessionConfig(secret_key=SECRET, encryption_keys=[KEY, base64.b64encode(OLD_KEY).decode()])
    assert config.sealing_keys == (KEY, OLD_KEY)


def test_no_keys_means_no_encryption() -> None:
    config = SessionConfig(secret_key=SECRET)
    assert config.sealing_keys == ()
    assert SessionCore(config).sealer is None


@pytest.mark.parametrize(
    ("given", "error", "match"),
    [
        (b"short", ValueError, r"encryption_keys\[0\] must be 32 bytes .* got 5 bytes"),
        (KEY + b"!", ValueError, r"must be 32 bytes"),
        ("not base64 at all!", ValueError, r"encryption_keys\[0\] is not base64"),
        (base64.b64encode(b"x" * 16).decode(), ValueError, r"got 16 bytes"),
        ([KEY, 42], TypeError, r"entries must be bytes or base64 str, got int"),
        (42, TypeError, r"must be a list of keys"),
        ([KEY, base64.b64encode(KEY).decode()], ValueError, r"encryption_keys\[1\] is listed twice"),
    ],
)
def test_bad_keys_raise_naming_the_field(given: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as excinfo:
        SessionConfig(secret_key=SECRET, encryption_keys=given)
    assert type(excinfo.value) is error
    assert "SessionConfig.encryption_keys" in str(excinfo.value)


def test_keys_are_not_in_the_repr() -> None:
    text = base64.b64encode(KEY).decode()
    assert text not in repr(SessionConfig(secret_key=SECRET, encryption_keys=[text]))


def test_keys_without_a_cipher_are_refused() -> None:
    with pytest.raises(ValueError, match="no cipher"):
        sealer_of((KEY,), None)


def test_keys_that_share_an_id_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "key_id", lambda key: "AAAA")
    with pytest.raises(ValueError, match="share a key id"):
        Sealer((KEY, OLD_KEY), AesGcm)


def test_without_cryptography_the_store_refuses_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the "encryption" extra were not installed: importing cryptography fails.
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    monkeypatch.delitem(sys.modules, "sharedsession._aead")
    config = SessionConfig(secret_key=SECRET, encryption_keys=[KEY])
    with pytest.raises(ImportError, match=r"pip install 'sharedsession\[encryption\]'"):
        SessionStore(config)
    # Without keys, nothing of it is needed.
    SessionStore(SessionConfig(secret_key=SECRET)).close()


# -- the sealed layout -------------------------------------------------------------------


def test_a_sealed_value_is_ascii_marked_and_names_its_key() -> None:
    text = sealed(HANDLE, "cart", b'["apple"]')
    assert text.isascii()
    assert text.startswith(MARKER + key_id(KEY))
    assert "apple" not in text
    assert not set(text) & set("=/+")  # unpadded base64url: nothing a JSON encoder escapes


def test_every_seal_takes_a_fresh_nonce() -> None:
    assert sealed(HANDLE, "n", b"1") != sealed(HANDLE, "n", b"1")


def test_a_sealed_value_opens_for_its_session_and_field() -> None:
    texts = {"cart": sealed(HANDLE, "cart", b'["apple"]'), "plain": "5"}
    assert sealer().open_texts(HANDLE, texts) == {"cart": '["apple"]', "plain": "5"}


def test_app_keys_that_look_like_metadata_are_bound_to_their_field() -> None:
    # App key "#v" lives in field "##v" (keys.py): the field name is what is bound.
    text = sealed(HANDLE, k.field_of("#v"), b'"x"')
    assert sealer().open_texts(HANDLE, {"#v": text}) == {"#v": '"x"'}


def test_nothing_sealed_is_returned_as_it_is() -> None:
    texts = {"n": "1", "user": '"alice"'}
    assert sealer().open_texts(HANDLE, texts) is texts


@pytest.mark.parametrize(
    ("handle", "field"),
    [(OTHER_HANDLE, "cart"), (HANDLE, "wishlist"), (OTHER_HANDLE, "wishlist")],
    ids=["another-session", "another-field", "both"],
)
def test_a_value_copied_elsewhere_does_not_open(handle: str, field: str) -> None:
    text = sealed(HANDLE, "cart", b'["apple"]')
    with pytest.raises(UnopenedValueError, match="does not open"):
        sealer().open_texts(handle, {field: text})


def tampered(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


@pytest.mark.parametrize("at", [5, 10, 20, -1, -10])
def test_a_tampered_value_does_not_open(at: int) -> None:
    text = sealed(HANDLE, "n", b"12345")
    with pytest.raises(UnopenedValueError):
        sealer().open_texts(HANDLE, {"n": tampered(text, at % len(text))})


@pytest.mark.parametrize(
    "text",
    [
        "~",
        "~AAAA",
        "~AAAA" + "B" * 40,  # an unknown key id
        "~" + "é" * 40,
        MARKER + key_id(KEY) + "!" * 40,  # not base64
        MARKER + key_id(KEY) + "AAAA",  # shorter than a nonce and a tag
        MARKER + key_id(KEY),
    ],
)
def test_malformed_sealed_values_do_not_open(text: str) -> None:
    with pytest.raises(UnopenedValueError):
        sealer().open_texts(HANDLE, {"n": text})


def test_a_value_of_a_key_no_longer_configured_names_its_id() -> None:
    text = sealed(HANDLE, "n", b"1", OLD_KEY)
    with pytest.raises(UnopenedValueError, match=f"key not configured .*{key_id(OLD_KEY)}"):
        sealer(KEY).open_texts(HANDLE, {"n": text})


def test_old_keys_open_and_the_newest_seals() -> None:
    old = sealed(HANDLE, "n", b"1", OLD_KEY)
    rotated = sealer(KEY, OLD_KEY)
    assert rotated.open_texts(HANDLE, {"n": old}) == {"n": "1"}
    (_, new) = rotated.seal_pairs(HANDLE, ["n", b"2"])
    assert str(new).startswith(MARKER + key_id(KEY))


def test_no_key_ids_collide_by_accident() -> None:
    ids = {key_id(os.urandom(32)) for _ in range(1000)}
    assert len(ids) >= 990  # 24 bits: a few collisions in a million pairs
    assert all(len(i) == 4 for i in ids)


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -1, 1.5, "", "~tilde", [], {}, {" t": 1}, ("a",), b"~", [["~"]], {"~": "~"}],
)
def test_no_stored_plain_value_starts_like_a_sealed_one(value: Any) -> None:
    # What tells a plain value (stored before encryption was on) from a sealed one.
    assert not codec.encode(value).startswith(MARKER.encode())


# -- where the planner seals and opens (scripted replies) -------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def core(clock: FakeClock) -> SessionCore:
    config = SessionConfig(secret_key=SECRET, key_prefix="p:", idle_timeout=100, encryption_keys=[KEY])
    return SessionCore(config, clock=clock, cipher=AesGcm)


def load_reply(handle: str, data: dict[str, str], **meta: str) -> bytes:
    fields = {k.VERSION: k.FORMAT_VERSION, k.CREATED: str(NOW_MS), **meta}
    fields.update({k.field_of(name): text for name, text in data.items()})
    return hash_reply(fields)


def load(core: SessionCore, clock: FakeClock, data: dict[str, str], **meta: str) -> tuple[Any, str]:
    sid = new_sid()
    handle = k.handle_of(sid)
    cookie = CookieSigner([SECRET], clock).sign(sid)
    session, _ = run(core.load(cookie, UNBOUND), [load_reply(handle, data, **meta)])
    return session, handle


def pairs(args: tuple[object, ...]) -> dict[object, object]:
    return dict(zip(args[0::2], args[1::2], strict=True))


def test_a_new_session_is_created_sealed_with_its_metadata_plain(core: SessionCore) -> None:
    from sharedsession import Session

    session = Session()
    session["user"] = "alice"
    session["#odd"] = 1
    _, batches = run(core.save(session), [1])
    create = script(batches[0], "create")
    fields = pairs(create.args[2:])
    assert fields[k.VERSION] == k.FORMAT_VERSION
    assert fields[k.CREATED] == NOW_MS
    handle = create.key.rpartition(":")[2]
    app = {name: text for name, text in fields.items() if k.key_of(str(name)) is not None}
    assert set(app) == {"user", "##odd"}
    assert all(str(text).startswith(MARKER) for text in app.values())
    assert sealer().open_texts(handle, {"user": str(app["user"])}) == {"user": '"alice"'}
    assert session._record is not None
    assert dict(session._record.fields) == {"user": b'"alice"', "#odd": b"1"}  # plain in memory


def test_a_load_opens_sealed_and_plain_values_alike(core: SessionCore, clock: FakeClock) -> None:
    sid = new_sid()
    handle = k.handle_of(sid)
    reply = load_reply(handle, {"cart": sealed(handle, "cart", b'["apple"]'), "legacy": '"plain"'})
    session, _ = run(core.load(CookieSigner([SECRET], clock).sign(sid), UNBOUND), [reply])
    assert session._encoded == {"cart": b'["apple"]', "legacy": b'"plain"'}
    assert dict(session) == {"cart": ["apple"], "legacy": "plain"}


def test_a_value_that_does_not_open_makes_the_session_new_with_a_warning(
    core: SessionCore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sid = new_sid()
    handle = k.handle_of(sid)
    copied = sealed(OTHER_HANDLE, "user", b'"admin"')  # from another session
    reply = load_reply(handle, {"user": copied, "n": sealed(handle, "n", b"1")}, **{k.USER: "mallory"})
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        session, _ = run(core.load(CookieSigner([SECRET], clock).sign(sid), UNBOUND), [reply])
    assert session.state is State.NEW
    assert session.new
    assert dict(session) == {}
    assert session.user_id is None
    assert any("session['user']: sealed value does not open" in r.getMessage() for r in caplog.records)


def test_an_update_seals_only_the_changed_values_and_keeps_metadata_plain(
    core: SessionCore, clock: FakeClock
) -> None:
    session, handle = load(core, clock, {"a": "1", "b": "2"})
    session["a"] = 10
    session.user_id = "alice"
    _, batches = run(core.save(session), [1], [1])
    assert [names(batch) for batch in batches] == [["index_add"], ["update"]]
    update = script(batches[1], "update")
    count = update.args[2]
    assert isinstance(count, int)
    sets = pairs(update.args[3 : 3 + 2 * count])
    assert set(sets) == {"a", k.CAP, k.USER}
    assert sets[k.USER] == "alice"
    assert isinstance(sets[k.CAP], int)
    assert sealer().open_texts(handle, {"a": str(sets["a"])}) == {"a": "10"}
    assert session._record is not None
    assert session._record.fields == {"a": b"10", "b": b"2"}


def test_a_regenerate_seals_the_data_for_the_successor(core: SessionCore, clock: FakeClock) -> None:
    sid = new_sid()
    old = k.handle_of(sid)
    reply = load_reply(old, {"n": sealed(old, "n", b"1")})
    session, _ = run(core.load(CookieSigner([SECRET], clock).sign(sid), UNBOUND), [reply])
    session.regenerate()
    _, batches = run(core.save(session), [1], [1])
    create = script(batches[0], "create")
    new = create.key.rpartition(":")[2]
    assert new != old
    value = str(pairs(create.args[2:])["n"])
    assert sealer().open_texts(new, {"n": value}) == {"n": "1"}
    with pytest.raises(UnopenedValueError):
        sealer().open_texts(old, {"n": value})


def test_a_regenerate_that_finds_a_value_that_does_not_open_is_dropped(
    core: SessionCore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    session, old = load(core, clock, {"n": "1"})
    session.regenerate()
    # Meanwhile a value was written that does not open for this session.
    now_stored = load_reply(old, {"n": sealed(OTHER_HANDLE, "n", b"2")}, **{k.REVISION: "1"})
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        result, batches = run(core.save(session), [1], [now_stored], [1])
    assert [names(batch) for batch in batches] == [["create"], ["retire"], ["DEL"]]
    assert command(batches[2], "DEL").args == ("DEL", script(batches[0], "create").key)  # our copy undone
    assert result.outcome == "gone"
    assert result.cookie is None
    assert any("regenerate() dropped" in r.getMessage() for r in caplog.records)


def test_the_derived_keys_kept_are_bounded() -> None:
    keeper = sealer()
    for i in range(sealing._CIPHERS_KEPT + 10):
        keeper.seal_pairs(f"{i:032x}", ["n", b"1"])
    assert 0 < len(keeper._ciphers) <= sealing._CIPHERS_KEPT
    # A session whose key was let go still opens: its key is derived again.
    text = sealed(HANDLE, "n", b"1")
    keeper._ciphers.clear()
    assert keeper.open_texts(HANDLE, {"n": text}) == {"n": "1"}

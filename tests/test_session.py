"""Tests of the Session mapping: encoding at assignment, size limit, flags and lifecycle."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from sharedsession import Session
from sharedsession._core import codec
from sharedsession._core.keys import handle_of
from sharedsession._core.record import Record, State
from sharedsession._core.session import FIELD_COST as C
from sharedsession._core.signing import new_sid
from sharedsession.errors import (
    SessionDataError,
    SessionError,
    SessionTooLargeError,
    UnserializableValueError,
)

UNSTORABLE: list[Any] = [
    pytest.param(set(), id="set"),
    pytest.param(object(), id="object"),
    pytest.param({1: "x"}, id="int-dict-key"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param([1, 2, {3}], id="nested-set"),
    pytest.param({"ok": [object()]}, id="nested-object"),
]


def _record(data: dict[str, Any], *, user_id: str | None = None) -> Record:
    sid = new_sid()
    return Record(
        sid=sid,
        handle=handle_of(sid),
        created_ms=1_700_000_000_000,
        cap_ms=None,
        user_id=user_id,
        fields={key: codec.encode(value) for key, value in data.items()},
        fingerprint="",
        client_ip=None,
        user_agent=None,
        cookie_issued_s=1_700_000_000,
    )


def _loaded(data: dict[str, Any], *, max_size: int = 64 * 1024, user_id: str | None = None) -> Session:
    return Session(data, max_size=max_size, record=_record(data, user_id=user_id))


def _snapshot(session: Session) -> tuple[dict[str, Any], list[str], bool, State, str | None]:
    return (copy.deepcopy(dict(session)), list(session), session.modified, session.state, session.user_id)


# -- assignment encodes at once ----------------------------------------------


def test_assignment_encodes_at_once() -> None:
    session = Session()
    session["n"] = 5
    session["name"] = "alice"
    session["t"] = (1, "a")
    assert session._stored_fields() == {"n": b"5", "name": b'"alice"', "t": b'{" t":[1,"a"]}'}
    assert dict(session) == {"n": 5, "name": "alice", "t": (1, "a")}


@pytest.mark.parametrize("value", UNSTORABLE)
def test_unstorable_value_raises_and_leaves_session_unchanged(value: Any) -> None:
    session = Session()
    before = _snapshot(session)
    with pytest.raises(UnserializableValueError) as excinfo:
        session["bad"] = value
    assert isinstance(excinfo.value, SessionDataError)
    assert isinstance(excinfo.value, SessionError)
    assert isinstance(excinfo.value, TypeError)
    assert isinstance(excinfo.value, ValueError)
    assert "session['bad']" in str(excinfo.value)
    assert _snapshot(session) == before
    assert "bad" not in session
    assert session.modified is False


@pytest.mark.parametrize("value", UNSTORABLE)
def test_unstorable_value_on_loaded_session_keeps_old_value(value: Any) -> None:
    session = _loaded({"keep": 1, "bad": "old"})
    before = _snapshot(session)
    with pytest.raises(UnserializableValueError):
        session["bad"] = value
    assert _snapshot(session) == before
    assert session["bad"] == "old"
    assert session.modified is False
    assert session._stored_fields() == {"keep": b"1", "bad": b'"old"'}


@pytest.mark.parametrize("key", [1, None, b"key", ("a",), 1.5])
def test_non_str_key_raises(key: Any) -> None:
    session = Session()
    with pytest.raises(UnserializableValueError, match="session keys must be str"):
        session[key] = "value"
    assert dict(session) == {}
    assert session.modified is False


# -- the size limit ------------------------------------------------------------


def test_value_that_fits_exactly_is_accepted() -> None:
    # Size is field name + encoded value + FIELD_COST: "a" (1) + '"xxxxxxx"' (9) = 10, + C.
    session = Session(max_size=10 + C)
    session["a"] = "xxxxxxx"
    assert session["a"] == "xxxxxxx"


def test_too_large_raises_and_leaves_session_unchanged() -> None:
    session = Session(max_size=10 + C)
    session["a"] = "xxxxxxx"
    session._modified = False  # as after a save, to see that the failure does not set it
    before = _snapshot(session)
    with pytest.raises(SessionTooLargeError) as excinfo:
        session["b"] = 1
    assert isinstance(excinfo.value, SessionDataError)
    assert isinstance(excinfo.value, ValueError)
    assert not isinstance(excinfo.value, TypeError)
    assert f"max_size={10 + C}" in str(excinfo.value)
    assert _snapshot(session) == before
    assert session.modified is False


def test_single_value_over_limit_on_empty_session() -> None:
    session = Session(max_size=10 + C)
    with pytest.raises(SessionTooLargeError):
        session["a"] = "xxxxxxxx"  # 1 + 10 = 11, + C
    assert dict(session) == {}
    assert session.modified is False


def test_replacing_counts_the_old_value_out() -> None:
    session = Session(max_size=10 + 2 * C)
    session["a"] = "xxxxxxx"
    session["a"] = "yyyyyyy"  # same size: still exactly at the limit
    assert session["a"] == "yyyyyyy"
    session["a"] = 1  # 2 bytes: 8 left
    session["b"] = "zzzzz"  # 1 + 7 = 8
    assert dict(session) == {"a": 1, "b": "zzzzz"}


def test_failed_too_large_replace_keeps_old_value_and_accounting() -> None:
    session = Session(max_size=10 + 2 * C)
    session["a"] = "xxx"  # 6 bytes
    with pytest.raises(SessionTooLargeError):
        session["a"] = "x" * (20 + C)
    assert session["a"] == "xxx"
    session["b"] = 123  # 1 + 3 = 4: exactly 10, so the failed attempt did not count
    with pytest.raises(SessionTooLargeError):
        session["c"] = 1
    assert dict(session) == {"a": "xxx", "b": 123}


def test_deleting_frees_space() -> None:
    session = Session(max_size=10 + C)
    session["a"] = "xxxxxxx"
    del session["a"]
    session["b"] = "yyyyyyy"
    assert dict(session) == {"b": "yyyyyyy"}


def test_escaped_key_costs_its_extra_byte() -> None:
    # An app key starting with "#" is stored as "##a": one more byte.
    session = Session(max_size=10 + C)
    with pytest.raises(SessionTooLargeError):
        session["#a"] = "xxxxxx"  # "##a" (3) + '"xxxxxx"' (8) = 11
    session["#a"] = "xxxxx"  # 3 + 7 = 10
    assert dict(session) == {"#a": "xxxxx"}


def test_loaded_session_counts_stored_sizes() -> None:
    session = _loaded({"a": "xxxxxxx"}, max_size=10 + C)
    with pytest.raises(SessionTooLargeError):
        session["b"] = 1
    session["a"] = "yyyyyyy"
    assert dict(session) == {"a": "yyyyyyy"}


def test_a_session_stored_under_a_larger_limit_can_be_read_and_shrunk_not_grown() -> None:
    """A deploy lowered max_size: sessions stored before stay readable."""
    session = _loaded({"a": "x" * 30, "b": 1}, max_size=10 + C)  # 33 + 2 + 2 C bytes
    assert session._stored_fields() == {"a": b'"' + b"x" * 30 + b'"', "b": b"1"}  # a read-only save
    session["b"] = 2  # the same size: fine
    del session["a"]  # shrinks
    with pytest.raises(SessionTooLargeError):
        session["c"] = "x"  # one more key: past the limit again
    session["b"] = "xyz"  # grows, but within the limit now
    assert session._stored_fields() == {"b": b'"xyz"'}


def test_an_in_place_edit_may_not_grow_an_oversized_session() -> None:
    session = _loaded({"cart": [1, 2, 3]}, max_size=5 + C)
    session["cart"].pop()  # shrinks: fine, though still over
    assert session._stored_fields() == {"cart": b"[1,2]"}
    session["cart"].extend([3, 4])
    with pytest.raises(SessionTooLargeError):
        session._stored_fields()


# -- update is all or nothing ---------------------------------------------------


def test_update_all_or_nothing_on_unstorable() -> None:
    session = _loaded({"keep": 1})
    before = _snapshot(session)
    with pytest.raises(UnserializableValueError):
        session.update({"a": 1, "keep": 2, "bad": set(), "c": 3})
    assert _snapshot(session) == before
    assert dict(session) == {"keep": 1}
    assert session.modified is False
    assert session._stored_fields() == {"keep": b"1"}


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb"])
def test_a_key_that_cannot_be_encoded_is_a_session_data_error(key: str) -> None:
    session = Session()
    with pytest.raises(UnserializableValueError, match="not encodable"):
        session[key] = 1
    assert dict(session) == {}


def test_update_with_one_unencodable_key_stores_nothing() -> None:
    session = _loaded({"keep": 1})
    with pytest.raises(UnserializableValueError):
        session.update({"a": 1, "\ud800": 2, "c": 3})
    assert dict(session) == {"keep": 1}
    assert session.modified is False


def test_update_all_or_nothing_on_too_large() -> None:
    session = Session(max_size=10 + 2 * C)
    session["a"] = 1  # 2 bytes
    session._modified = False
    with pytest.raises(SessionTooLargeError):
        session.update({"b": 2, "a": 3, "c": "xxxxxx"})  # 2 + 2 + 9 = 13
    assert dict(session) == {"a": 1}
    assert session.modified is False
    # The rollback restored the accounting: 8 bytes are still free.
    session["d"] = "xxxxx"
    assert dict(session) == {"a": 1, "d": "xxxxx"}


def test_update_non_str_key_all_or_nothing() -> None:
    session = Session()
    with pytest.raises(UnserializableValueError):
        session.update({"a": 1, 2: "b"})
    assert dict(session) == {}
    assert session.modified is False


def test_ior_all_or_nothing() -> None:
    session = Session()
    session["x"] = 0
    session._modified = False
    with pytest.raises(UnserializableValueError):
        session |= {"a": 1, "b": object()}
    assert dict(session) == {"x": 0}
    assert session.modified is False


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (({"a": 1, "b": 2},), {}, {"a": 1, "b": 2}),
        (([("a", 1), ("b", [2])],), {}, {"a": 1, "b": [2]}),
        ((), {"a": 1}, {"a": 1}),
        (({"a": 1},), {"a": 2, "c": 3}, {"a": 2, "c": 3}),
    ],
)
def test_update_forms(args: tuple[Any, ...], kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    session = Session()
    session.update(*args, **kwargs)
    assert dict(session) == expected
    assert session.modified is True
    assert session._stored_fields() == {key: codec.encode(value) for key, value in expected.items()}


def test_ior_returns_the_session() -> None:
    session = Session()
    same = session
    session |= {"a": 1}
    assert session is same
    assert isinstance(session, Session)
    assert dict(session) == {"a": 1}


# -- every mutator sets modified ----------------------------------------------------


def _set(s: Session) -> None:
    s["new"] = 1


def _replace(s: Session) -> None:
    s["a"] = 2


def _del(s: Session) -> None:
    del s["a"]


def _pop(s: Session) -> None:
    s.pop("a")


def _pop_default(s: Session) -> None:
    s.pop("a", None)


def _popitem(s: Session) -> None:
    s.popitem()


def _clear(s: Session) -> None:
    s.clear()


def _setdefault(s: Session) -> None:
    s.setdefault("new", 1)


def _update(s: Session) -> None:
    s.update({"new": 1})


def _update_kwargs(s: Session) -> None:
    s.update(new=1)


def _ior(s: Session) -> None:
    s |= {"new": 1}


MUTATORS: list[Callable[[Session], None]] = [
    _set,
    _replace,
    _del,
    _pop,
    _pop_default,
    _popitem,
    _clear,
    _setdefault,
    _update,
    _update_kwargs,
    _ior,
]


@pytest.mark.parametrize("mutate", MUTATORS, ids=lambda f: f.__name__.lstrip("_"))
def test_every_mutator_sets_modified(mutate: Callable[[Session], None]) -> None:
    session = _loaded({"a": 1})
    assert session.modified is False
    mutate(session)
    assert session.modified is True


@pytest.mark.parametrize("mutate", [_del, _pop, _popitem, _clear], ids=lambda f: f.__name__.lstrip("_"))
def test_removals_drop_the_stored_field(mutate: Callable[[Session], None]) -> None:
    session = _loaded({"a": 1})
    mutate(session)
    assert dict(session) == {}
    assert session._stored_fields() == {}


def test_pop() -> None:
    session = _loaded({"a": [1], "b": 2})
    assert session.pop("a") == [1]
    assert dict(session) == {"b": 2}
    assert session.modified is True


def test_pop_missing_with_default() -> None:
    session = _loaded({"a": 1})
    sentinel = object()
    assert session.pop("missing", sentinel) is sentinel
    assert session.pop("missing", None) is None
    assert dict(session) == {"a": 1}
    assert session.modified is False


def test_pop_missing_without_default_raises_keyerror() -> None:
    session = _loaded({"a": 1})
    with pytest.raises(KeyError, match="missing"):
        session.pop("missing")
    assert session.modified is False


def test_del_missing_raises_keyerror() -> None:
    session = _loaded({"a": 1})
    with pytest.raises(KeyError):
        del session["missing"]
    assert session.modified is False


def test_popitem_empty_raises_keyerror() -> None:
    session = Session()
    with pytest.raises(KeyError):
        session.popitem()
    assert session.modified is False


def test_popitem_returns_last_pair() -> None:
    session = _loaded({"a": 1, "b": 2})
    assert session.popitem() == ("b", 2)
    assert dict(session) == {"a": 1}


def test_clear_on_empty_does_not_set_modified() -> None:
    session = Session()
    session.clear()
    assert session.modified is False
    loaded = _loaded({})
    loaded.clear()
    assert loaded.modified is False


def test_clear_frees_space() -> None:
    session = Session(max_size=10 + C)
    session["a"] = "xxxxxxx"
    session.clear()
    session["b"] = "yyyyyyy"
    assert dict(session) == {"b": "yyyyyyy"}


def test_setdefault_existing_key_keeps_value() -> None:
    session = _loaded({"a": 1})
    assert session.setdefault("a", 99) == 1
    assert session["a"] == 1
    assert session.modified is False


def test_setdefault_new_key() -> None:
    session = Session()
    assert session.setdefault("a", [1]) == [1]
    assert session.setdefault("b") is None
    assert dict(session) == {"a": [1], "b": None}


def test_setdefault_unstorable_default_raises() -> None:
    session = Session()
    with pytest.raises(UnserializableValueError):
        session.setdefault("a", set())
    assert "a" not in session
    assert session.modified is False


# -- lifecycle --------------------------------------------------------------------------


def test_new_session() -> None:
    session = Session()
    assert session.new is True
    assert session.state is State.NEW
    assert session.handle is None
    assert session.user_id is None
    assert session.modified is False


def test_loaded_session() -> None:
    record = _record({"a": 1}, user_id="alice")
    session = Session({"a": 1}, record=record)
    assert session.new is False
    assert session.state is State.LOADED
    assert session.handle == record.handle
    assert session.user_id == "alice"
    assert session.modified is False
    assert dict(session) == {"a": 1}


def test_destroy() -> None:
    session = _loaded({"a": 1, "b": [2]}, user_id="alice")
    session.destroy()
    assert dict(session) == {}
    assert session.user_id is None
    assert session.state is State.DESTROYED
    assert session.modified is True
    assert session._stored_fields() == {}


def test_destroy_new_session() -> None:
    session = Session()
    session["a"] = 1
    session.destroy()
    assert dict(session) == {}
    assert session.state is State.DESTROYED


def test_data_assigned_after_destroy_stays() -> None:
    session = _loaded({"a": 1}, max_size=20 + C)
    session.destroy()
    session["flash"] = "logged out"  # 5 + 12 = 17: the old data no longer counts
    assert dict(session) == {"flash": "logged out"}
    assert session.state is State.DESTROYED
    assert session._stored_fields() == {"flash": b'"logged out"'}


def test_regenerate_new_session_stays_new() -> None:
    session = Session()
    session.regenerate()
    assert session.state is State.NEW
    assert session.modified is False


def test_regenerate_loaded_session() -> None:
    session = _loaded({"a": 1})
    session.regenerate()
    assert session.state is State.REGENERATED
    assert session.modified is True
    assert dict(session) == {"a": 1}
    session.regenerate()
    assert session.state is State.REGENERATED


def test_regenerate_after_destroy_stays_destroyed() -> None:
    session = _loaded({"a": 1})
    session.destroy()
    session.regenerate()
    assert session.state is State.DESTROYED


# -- user_id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [42, b"alice", "", "x" * 257],
    ids=["int", "bytes", "empty", "257-chars"],
)
def test_user_id_invalid(value: Any) -> None:
    session = Session()
    with pytest.raises(TypeError, match="user_id"):
        session.user_id = value
    assert session.user_id is None
    assert session.modified is False


@pytest.mark.parametrize("value", ["a", "alice", "x" * 256, "user@example.com"])
def test_user_id_valid(value: str) -> None:
    session = Session()
    session.user_id = value
    assert session.user_id == value
    assert session.modified is True


def test_user_id_none_unlinks() -> None:
    session = _loaded({}, user_id="alice")
    assert session.user_id == "alice"
    session.user_id = None
    assert session.user_id is None
    assert session.modified is True


def test_user_id_same_value_not_modified() -> None:
    session = _loaded({}, user_id="alice")
    session.user_id = "alice"
    assert session.modified is False
    fresh = Session()
    fresh.user_id = None
    assert fresh.modified is False


# -- _stored_fields and in-place edits ---------------------------------------------


def test_stored_fields_sees_nested_list_edit() -> None:
    session = _loaded({"cart": [1, 2], "name": "a"})
    session["cart"].append(3)
    assert session.modified is False  # not visible until save
    assert session._stored_fields() == {"cart": b"[1,2,3]", "name": b'"a"'}


def test_stored_fields_sees_nested_dict_edit() -> None:
    session = Session()
    session["prefs"] = {"theme": "dark"}
    session["prefs"]["lang"] = "fr"
    assert session._stored_fields() == {"prefs": b'{"theme":"dark","lang":"fr"}'}


def test_stored_fields_nested_unstorable_raises() -> None:
    session = _loaded({"cart": [1, 2]})
    session["cart"].append(object())
    with pytest.raises(UnserializableValueError, match=r"session\['cart'\]"):
        session._stored_fields()


def test_stored_fields_too_large_after_in_place_growth() -> None:
    session = _loaded({"cart": [1]}, max_size=12 + C)  # "cart" (4) + "[1]" (3) = 7
    session["cart"].extend([2, 3])  # "[1,2,3]" (7): 11, still fits
    assert session._stored_fields() == {"cart": b"[1,2,3]"}
    session["cart"].append(4)  # "[1,2,3,4]" (9): 13
    with pytest.raises(SessionTooLargeError, match=f"max_size={12 + C}"):
        session._stored_fields()


def test_stored_fields_accounts_in_place_shrink() -> None:
    session = Session(max_size=20 + 2 * C)
    session["cart"] = [1, 2, 3, 4, 5]  # 4 + 11 = 15
    session["cart"].clear()
    assert session._stored_fields() == {"cart": b"[]"}  # 4 + 2 = 6
    session["more"] = "xxxxxxxx"  # 4 + 10 = 14: 20 in all
    assert session._stored_fields() == {"cart": b"[]", "more": b'"xxxxxxxx"'}


# -- a Session is a dict ----------------------------------------------------------------


def test_session_is_a_dict() -> None:
    session = Session()
    session.update({"a": 1, "b": [1, "x"], "c": {"d": None}})
    assert isinstance(session, dict)
    assert json.dumps(session, sort_keys=True) == '{"a": 1, "b": [1, "x"], "c": {"d": null}}'
    assert dict(session) == {"a": 1, "b": [1, "x"], "c": {"d": None}}
    assert session == {"a": 1, "b": [1, "x"], "c": {"d": None}}
    assert session.get("missing", 7) == 7
    assert sorted(session) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "copier",
    [
        pytest.param(copy.copy, id="copy"),
        pytest.param(copy.deepcopy, id="deepcopy"),
        pytest.param(lambda s: pickle.loads(pickle.dumps(s)), id="pickle"),  # noqa: S301
        pytest.param(lambda s: s.copy(), id="method"),
    ],
)
def test_copy_gives_plain_dict(copier: Callable[[Session], Any]) -> None:
    session = _loaded({"a": 1, "b": [2, 3]})
    result = copier(session)
    assert type(result) is dict
    assert result == {"a": 1, "b": [2, 3]}

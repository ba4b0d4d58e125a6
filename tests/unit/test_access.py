"""Scopes, principals and secrets of access tokens (pure rules)."""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifactstore_core.domain.access import (
    ACTIONS,
    MAX_SCOPES,
    Principal,
    Scope,
    is_secret,
    new_secret,
    parse_scopes,
    secret_digest,
)
from artifactstore_core.errors import AccessDeniedError, InvalidInputError

pytestmark = pytest.mark.unit

EXPIRY = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def principal(*scopes: str, run_id: str | None = None) -> Principal:
    return Principal("t1", "ci", parse_scopes(scopes), run_id, EXPIRY)


@pytest.mark.parametrize(
    ("text", "glob", "actions"),
    [
        ("package:team/**:read,write", "team/**", {"read", "write"}),
        ("package:**:admin", "**", {"admin"}),
        ("package:reports/daily:tag", "reports/daily", {"tag"}),
        ("package:a/*-nightly/*:retention-admin,attest,hold", "a/*-nightly/*", None),
    ],
)
def test_scopes_parse(text: str, glob: str, actions: set[str] | None) -> None:
    scope = Scope.parse(text)
    assert scope.glob == glob
    if actions is not None:
        assert scope.actions == actions
    assert Scope.parse(str(scope)) == scope


def test_canonical_text_orders_actions_and_admin_stands_alone() -> None:
    assert str(Scope.parse("package:x:write,read,write")) == "package:x:read,write"
    assert str(Scope.parse("package:x:read,admin")) == "package:x:admin"
    assert Scope.parse("package:x:read,admin") == Scope.parse("package:x:admin")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team/**:read", "write package:<name-glob>:<actions>"),
        ("repo:team:read", "write package:<name-glob>:<actions>"),
        ("package:team", "write package:<name-glob>:<actions>"),
        ("package:team:read:write", "write package:<name-glob>:<actions>"),
        ("package::read", "the name glob is empty"),
        ("package:team:", "unknown action ''"),
        ("package:team:read,", "unknown action ''"),
        ("package:team:delete", "unknown action 'delete'"),
        ("package:team:READ", "unknown action 'READ'"),
        ("package:team: read", "unknown action ' read'"),
        # hostile globs: traversal, absolute, empty segments, regex and shell syntax
        ("package:team/../other:read", "glob segment '..'"),
        ("package:../x:read", "glob segment '..'"),
        ("package:./x:read", "glob segment '.'"),
        ("package:/team/**:read", "glob segment ''"),
        ("package:team/:read", "glob segment ''"),
        ("package:team//x:read", "glob segment ''"),
        ("package:team/.*:read", "glob segment '.*'"),
        ("package:team/[ab]:read", "glob segment '[ab]'"),
        ("package:team/a?:read", "glob segment 'a?'"),
        ("package:team/(a|b):read", "glob segment '(a|b)'"),
        ("package:team/a+:read", "glob segment 'a+'"),
        ("package:team/^a$:read", "glob segment '^a$'"),
        ("package:team\\x:read", "glob segment 'team\\\\x'"),
        ("package:team/a b:read", "glob segment 'a b'"),
        ("package:team/-a:read", "glob segment '-a'"),
        ("package:team/a\x00:read", "glob segment"),
        ("package:team/**x:read", "'**' must be a whole segment"),
        ("package:team/***:read", "'**' must be a whole segment"),
        ("package:" + "a" * 513 + ":read", "longer than 512"),
        ("package:" + "a/" * 600 + "a:read", "longer than"),
    ],
)
def test_bad_scopes_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)) as raised:
        Scope.parse(text)
    assert "\n" not in str(raised.value)


def test_scope_must_be_text() -> None:
    with pytest.raises(InvalidInputError, match="scope must be text"):
        Scope.parse(42)  # type: ignore[arg-type]


def test_scope_lists_are_bounded_deduplicated_and_non_empty() -> None:
    assert parse_scopes(["package:a:read", "package:a:read"]) == (Scope.parse("package:a:read"),)
    assert parse_scopes("package:a:read") == (Scope.parse("package:a:read"),)
    with pytest.raises(InvalidInputError, match="at least one scope"):
        parse_scopes([])
    with pytest.raises(InvalidInputError, match=f"at most {MAX_SCOPES} scopes"):
        parse_scopes(f"package:a{i}:read" for i in range(MAX_SCOPES + 1))


@pytest.mark.parametrize(
    ("glob", "name", "expected"),
    [
        ("team/daily", "team/daily", True),
        ("team/daily", "team/daily2", False),
        ("team/daily", "team", False),
        ("team/*", "team/daily", True),
        ("team/*", "team/daily/x", False),
        ("team/*", "team", False),
        ("team/**", "team", True),
        ("team/**", "team/daily", True),
        ("team/**", "team/a/b/c", True),
        ("team/**", "teams/a", False),
        ("team*/**", "teams/a", True),
        ("**", "anything/at/all", True),
        ("**/daily", "daily", True),
        ("**/daily", "a/b/daily", True),
        ("**/daily", "a/b/daily/x", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**/z", "a/b/c/y", False),
        ("*-nightly", "etl-nightly", True),
        ("*-nightly", "etl-nightly-2", False),
        ("*a*a*", "banana", True),
        ("*a*a*", "ban", False),
        # regex metacharacters that names may contain are literal
        ("a.b", "a.b", True),
        ("a.b", "aXb", False),
        ("a.*", "a.x", True),
        ("a.*", "ab", False),
        ("a-b", "a-b", True),
    ],
)
def test_globs_match_names(glob: str, name: str, expected: bool) -> None:
    assert Scope.parse(f"package:{glob}:read").matches(name) is expected


def test_hostile_glob_is_fast() -> None:
    many = Scope.parse("package:" + "/".join(["**"] * 80 + ["*a*a"] + ["**"] * 80) + ":read")
    stars = Scope.parse("package:" + "*a" * 250 + "*b:read")
    started = time.perf_counter()
    assert many.matches("/".join(["b" * 10] * 40)) is False
    assert stars.matches("a" * 500) is False
    assert many.covers_glob(stars.glob) is False
    assert time.perf_counter() - started < 1


_segment = st.from_regex(r"[ab.*]{1,4}", fullmatch=True).filter(
    lambda s: "**" not in s and not s.startswith(".")
)
_name_segment = st.from_regex(r"[ab.]{1,4}", fullmatch=True).filter(lambda s: s[0] != ".")


@given(st.lists(_segment, min_size=1, max_size=4), st.lists(_name_segment, min_size=1, max_size=4))
def test_single_segment_stars_agree_with_fnmatch(glob: list[str], name: list[str]) -> None:
    """Without ``**`` a glob matches as fnmatch does segment by segment (``*`` only)."""
    scope = Scope.parse(f"package:{'/'.join(glob)}:read")
    expected = len(glob) == len(name) and all(
        re.fullmatch(fnmatch.translate(g), n) for g, n in zip(glob, name, strict=True)
    )
    assert scope.matches("/".join(name)) is expected


def _naive_match(glob: list[str], name: list[str]) -> bool:
    """An independent reference: recursion over segments, fnmatch within one."""
    if not glob:
        return not name
    if glob[0] == "**":
        return any(_naive_match(glob[1:], name[skip:]) for skip in range(len(name) + 1))
    return (
        bool(name)
        and re.fullmatch(fnmatch.translate(glob[0]), name[0]) is not None
        and _naive_match(glob[1:], name[1:])
    )


@given(
    st.lists(_segment | st.just("**"), min_size=1, max_size=5),
    st.lists(_name_segment, min_size=1, max_size=5),
)
def test_double_stars_agree_with_a_naive_matcher(glob: list[str], name: list[str]) -> None:
    scope = Scope.parse(f"package:{'/'.join(glob)}:read")
    assert scope.matches("/".join(name)) is _naive_match(glob, name)


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        ("**", "**", True),
        ("**", "team/*", True),
        ("team/**", "team/**", True),
        ("team/**", "team/a/**", True),
        ("team/**", "team/*", True),
        ("team/**", "team", True),
        ("team/**", "**", False),
        ("team/**", "*/x", False),
        ("team/*", "team/**", False),
        ("team/*", "team/*", True),
        ("team/*", "team/a*", True),
        ("team/a*", "team/*", False),
        ("team/*", "team/a/b", False),
        ("*", "**", False),
        ("a.b", "a.b", True),
        ("a.b", "a*b", False),
        ("*-nightly", "etl-*-nightly", True),
    ],
)
def test_glob_covers_glob(parent: str, child: str, expected: bool) -> None:
    assert Scope.parse(f"package:{parent}:read").covers_glob(child) is expected


@given(
    st.lists(_segment | st.just("**"), min_size=1, max_size=4),
    st.lists(_segment | st.just("**"), min_size=1, max_size=4),
    st.lists(_name_segment, min_size=1, max_size=5),
)
def test_covering_is_sound(parent: list[str], child: list[str], name: list[str]) -> None:
    """If a parent glob covers a child glob, it matches every name the child matches."""
    wide = Scope.parse(f"package:{'/'.join(parent)}:read")
    narrow = Scope.parse(f"package:{'/'.join(child)}:read")
    joined = "/".join(name)
    if wide.covers_glob(narrow.glob) and narrow.matches(joined):
        assert wide.matches(joined)


@pytest.mark.parametrize(
    ("scopes", "action", "name", "expected"),
    [
        (["package:team/**:read"], "read", "team/x", True),
        (["package:team/**:read"], "write", "team/x", False),
        (["package:team/**:read"], "read", "other/x", False),
        (["package:team/**:admin"], "retention-admin", "team/x", True),
        (["package:team/**:read", "package:team/x:write"], "write", "team/x", True),
        (["package:team/**:read", "package:team/x:write"], "write", "team/y", False),
    ],
)
def test_principal_allows(scopes: list[str], action: str, name: str, expected: bool) -> None:
    assert principal(*scopes).allows(action, name) is expected
    if expected:
        principal(*scopes).require(action, name)
    else:
        with pytest.raises(AccessDeniedError) as raised:
            principal(*scopes).require(action, name)
        assert (raised.value.action, raised.value.name) == (action, name)
        assert f"lacks the {action!r} scope for package {name!r}" in str(raised.value)


def test_require_without_a_name_needs_every_name() -> None:
    principal("package:**:retention-admin").require("retention-admin")
    principal("package:**:admin").require("retention-admin")
    for narrow in ("package:team/**:retention-admin", "package:*:retention-admin"):
        with pytest.raises(AccessDeniedError, match="'retention-admin' scope for this registry"):
            principal(narrow).require("retention-admin")
    with pytest.raises(AccessDeniedError):
        principal("package:**:read").require("retention-admin")


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        (["package:**:admin"], ["package:team/**:read,write,tag"], True),
        (["package:**:admin"], ["package:**:admin"], True),
        (["package:team/**:read,write"], ["package:team/a:read"], True),
        (["package:team/**:read,write"], ["package:team/a/**:write"], True),
        (["package:team/**:read", "package:team/a:write"], ["package:team/a:read,write"], True),
        (["package:team/**:read,write"], ["package:team/a:tag"], False),
        (["package:team/**:read,write"], ["package:**:read"], False),
        (["package:team/*:read"], ["package:team/**:read"], False),
        (["package:team/**:write,read,tag,hold"], ["package:team/a:admin"], False),
        (["package:team/**:read"], ["package:team/a:read", "package:other:read"], False),
    ],
)
def test_child_scopes_within_parent(parent: list[str], child: list[str], expected: bool) -> None:
    assert principal(*parent).covers(parse_scopes(child), EXPIRY, None) is expected


def test_excess_names_what_exceeds() -> None:
    parent = principal("package:team/**:read")
    error = parent.excess(parse_scopes(["package:team/**:read,write"]), EXPIRY, None)
    assert error is not None
    assert (error.action, error.name) == ("write", "team/**")
    assert "cannot grant 'package:team/**:read,write'" in str(error)


def test_child_may_not_outlive_parent_nor_drop_its_run_binding() -> None:
    scopes = parse_scopes(["package:team/**:read"])
    parent = principal("package:team/**:read")
    assert parent.covers(scopes, EXPIRY, None)
    assert parent.covers(scopes, EXPIRY - dt.timedelta(days=1), "any-run")
    late = parent.excess(scopes, EXPIRY + dt.timedelta(seconds=1), None)
    assert late is not None
    assert "cannot outlive its parent" in str(late)
    bound = principal("package:team/**:read", run_id="run-1")
    assert bound.covers(scopes, EXPIRY, "run-1")
    for other in (None, "run-2"):
        unbound = bound.excess(scopes, EXPIRY, other)
        assert unbound is not None
        assert "bound to run 'run-1'" in str(unbound)


def test_secrets_have_the_documented_form() -> None:
    secret = new_secret()
    assert re.fullmatch(r"asr_[a-z2-7]{52}", secret)
    assert base64.b32decode(secret[4:].upper() + "====") and len(secret) == 56
    assert is_secret(secret)
    assert new_secret() != secret
    assert new_secret(lambda n: b"\x00" * n) == "asr_" + "a" * 52
    digest = secret_digest(secret)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and secret not in digest


@pytest.mark.parametrize(
    "text",
    [
        "",
        "asr_",
        "asr_" + "a" * 51,
        "asr_" + "a" * 53,
        "ASR_" + "a" * 52,
        "asr_" + "1" * 52,
        "asr_" + "a" * 51 + "=",
        "xyz_" + "a" * 52,
        "asr_" + "a" * 52 + "\n",
        None,
        b"asr_" + b"a" * 52,
    ],
)
def test_malformed_secrets_are_recognised(text: object) -> None:
    assert not is_secret(text)


def test_actions_are_the_documented_ones() -> None:
    assert ACTIONS == ("read", "write", "tag", "hold", "retention-admin", "attest", "admin")


def test_run_binding() -> None:
    principal("package:**:write").require_run(None)
    principal("package:**:write").require_run("any")
    bound = principal("package:**:write", run_id="run-1")
    bound.require_run("run-1")
    for other, shown in (("run-2", "run 'run-2'"), (None, "no run")):
        with pytest.raises(
            AccessDeniedError, match=f"bound to run 'run-1'; it cannot act for {shown}"
        ):
            bound.require_run(other)

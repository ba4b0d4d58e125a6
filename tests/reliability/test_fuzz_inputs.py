"""Fuzzing every input surface (issue #11): whatever a caller hands in, the answer is
either a success that replays (events read back, ``views check`` clean) or one typed,
one-line error with exit 1 or 2 and nothing recorded -- never a traceback.

The short form runs in ``make test`` (``FUZZ_SHORT`` examples per surface); with
``ARTIFACTSTORE_RELIABILITY_LONG=1`` each surface gets ``FUZZ_LONG`` examples.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from artifactstore_core import ArtifactStore
from artifactstore_core.cli import cli as cli_command
from artifactstore_core.errors import ArtifactStoreError
from tests.registry.conftest import blob_count, event_count

FUZZ_SHORT, FUZZ_LONG = 50, 1000
LONG = os.environ.get("ARTIFACTSTORE_RELIABILITY_LONG") == "1"
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 if LONG else 300)]
for _name, _examples in (("reliability-short", FUZZ_SHORT), ("reliability-long", FUZZ_LONG)):
    settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
FUZZ = settings(settings.get_profile("reliability-long" if LONG else "reliability-short"))

# ------------------------------------------------------------------------- strategies

EDGE_TEXT = [
    "", " ", "\x00", "a\x00b", "\udc80", "a\ud800", "x" * 5000, "9" * 5000,
    "99999999999999999999999", "-1", "0", "1", "9223372036854775807", "9223372036854775808",
    "existing/pkg", "existing/pkg@1", "existing/pkg@0", "existing/pkg@99999999999999999999999",
    "existing/pkg@" + "9" * 5000, "existing/pkg@²", "existing/pkg:latest", "existing/pkg:",
    "blake3:" + "0" * 64, "sha256:" + "f" * 64, "blake3:zz", "00000000-0000-0000-0000-000000000000",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01", "9999-12-31",
    "2026-01-01T00:00:00Z", "2026-13-01", "never", "@/dev/zero", "@/nonexistent", "@/etc",
    "../x", "/abs", "a/./b", "a//b", "raw-evidence", "transient", "permanent-record", "report",
    "package:", ":x", "package:\x00",
]  # fmt: skip
ANY_CHAR = st.characters(exclude_categories=())
texts = st.one_of(
    st.sampled_from(EDGE_TEXT),
    st.text(max_size=30),
    st.text(ANY_CHAR, max_size=30),
    st.text(st.sampled_from("ab/_.-@:9\x00\udc80 "), max_size=20),
)
huge_ints = st.one_of(
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, 10**1000]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)


def as_json(value: Any) -> str:
    """JSON text of a generated value (NaN and surrogates escaped, as a user could type)."""
    return json.dumps(value, ensure_ascii=True)


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for index in range(depth):
        value = {"k": value} if index % 2 else [value]
    return value


json_values = st.recursive(
    st.none() | st.booleans() | huge_ints | floats | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
deep_values = st.builds(nested, st.integers(0, 900), json_values)  # json.dumps stops near 1,000
metadata_values = st.one_of(
    st.dictionaries(texts, json_values | deep_values, max_size=4), json_values, deep_values
)


json_texts = st.one_of(
    metadata_values.map(as_json),
    texts,
    st.builds(lambda d: '{"a":' * d + "1" + "}" * d, st.integers(0, 6000)),
    st.builds(lambda n: '{"a": ' + "7" * n + "}", st.integers(1, 6000)),
)

# Plausible values: most examples of a surface should get past its first check.
names = st.from_regex(r"[a-z][a-z0-9_.-]{0,8}(/[a-z0-9_][a-z0-9_.-]{0,8}){0,2}", fullmatch=True)
safe_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)  # fmt: skip
safe_metadata = st.dictionaries(st.text(max_size=8), safe_json, max_size=4).map(as_json)
timestamps = st.builds(
    lambda moment, offset: moment.replace(tzinfo=dt.timezone(offset)).isoformat(),
    st.datetimes(),
    st.timedeltas(-dt.timedelta(hours=23), dt.timedelta(hours=23)),
)
small_numbers = st.integers(0, 50).map(str)


def plausible(valid: st.SearchStrategy[Any], weird: st.SearchStrategy[Any] = texts) -> Any:
    """Mostly ``valid``, sometimes ``weird``."""
    return st.one_of(valid, valid, weird)


# ------------------------------------------------------------------------- harness


class Registry:
    """A SQLite registry in a temporary directory, driven through the CLI in process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            "ARTIFACTSTORE_DATABASE_URL": f"sqlite:///{root / 'r.db'}",
            "ARTIFACTSTORE_STORAGE_URL": str(root / "blobs"),
            "ARTIFACTSTORE_GC_GRACE_SECONDS": "0",
        }
        (root / "f.txt").write_text("content")
        self.store = ArtifactStore.open(self.env["ARTIFACTSTORE_DATABASE_URL"], str(root / "blobs"))
        self.store.put("existing/pkg", {"f.txt": b"content"}, kind="report")
        self.successes = 0
        self.outcomes: Counter[str] = Counter()

    def counts(self) -> tuple[int, int]:
        return event_count(self.store), blob_count(self.store)

    def run(self, *args: str, env: dict[str, str] | None = None, writes: bool = True) -> int:
        """Run the CLI; assert the property; the exit code."""
        before = self.counts()
        with contextlib.chdir(self.root):
            result = CliRunner().invoke(cli_command, list(args), env={**self.env, **(env or {})})
        code = result.exit_code
        event(f"{args[0]}: exit {code}")
        self.outcomes[f"{args[0]} exit {code}"] += 1
        assert isinstance(result.exception, SystemExit | None), (
            f"traceback for {args!r}: {result.exception!r}"
        )
        assert code in (0, 1, 2), (args, code, result.output)
        if code != 0:
            lines = result.stderr.strip().splitlines()
            assert lines, (args, result.output)
            if not lines[-1].startswith("Error: "):  # click's own: usage, hint, error
                assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
            if writes:
                assert self.counts()[0] == before[0], f"{args!r} failed but recorded events"
        else:
            self.replays(before[0])
        return code

    def replays(self, since: int) -> None:
        """New events read back; every tenth success, the whole log replays cleanly."""
        self.store.events(since=since)
        self.successes += 1
        if self.successes % 10 == 0:
            self.check()

    def check(self) -> None:
        self.store.events()
        assert self.store.check_views() == []

    def close(self) -> None:
        print(f"\noutcomes: {dict(sorted(self.outcomes.items()))}")
        self.check()
        self.store.rebuild_views()
        assert self.store.check_views() == []
        self.store.close()


@contextlib.contextmanager
def registry() -> Iterator[Registry]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as root:
        opened = Registry(Path(root))
        yield opened
        opened.close()


def fuzz(strategy: st.SearchStrategy[Any], body: Callable[[Registry, Any], None]) -> None:
    """Run ``body`` for each example of ``strategy`` on one registry, then check it all."""
    with registry() as reg:

        @FUZZ
        @given(strategy)
        def example(value: Any) -> None:
            body(reg, value)

        example()


def options(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[list[str]]:
    """CLI options, each present or absent, flattened to arguments."""
    return st.fixed_dictionaries({}, optional=strategies).map(
        lambda chosen: [
            part
            for name, value in chosen.items()
            for part in ([f"--{name.replace('_', '-')}"] + ([] if value is True else [value]))
        ]
    )


# ------------------------------------------------------------------------- surfaces


def test_fuzz_put() -> None:
    args = st.tuples(
        plausible(names),
        options(
            kind=plausible(st.sampled_from(["report", "log", "output"])),
            retention_class=plausible(st.sampled_from(["transient", "permanent-record"])),
            metadata=plausible(safe_metadata, json_texts), input=plausible(st.just("existing/pkg")),
            run_id=plausible(st.text(max_size=10)), producer=texts, code_version=texts,
        ),
    )  # fmt: skip
    fuzz(args, lambda reg, a: reg.run("put", a[0], "f.txt", *a[1]))


SPEC_KEYS = ("kind", "retention_class", "metadata", "inputs", "run_id", "producer",
             "code_version", "unknown")  # fmt: skip


def test_fuzz_put_many_spec_lines() -> None:
    line = st.one_of(
        st.fixed_dictionaries(
            {"name": plausible(names, texts | huge_ints),
             "paths": plausible(st.just(["f.txt"]), json_values)},
            optional={
                **dict.fromkeys(SPEC_KEYS, json_values | texts),
                "metadata": plausible(safe_json, json_values),
            },
        ).map(lambda spec: as_json(spec).encode()),
        st.binary(max_size=60),
        json_texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    )  # fmt: skip

    def body(reg: Registry, lines: list[bytes]) -> None:
        (reg.root / "spec.jsonl").write_bytes(b"\n".join(lines))
        reg.run("put-many", "spec.jsonl")

    fuzz(st.lists(line, min_size=1, max_size=3), body)


def test_fuzz_ls_filters() -> None:
    args = st.tuples(
        st.lists(texts, max_size=1),
        options(
            kind=texts, tag=texts, retention_class=texts, run_id=texts,
            created_after=plausible(timestamps), created_before=plausible(timestamps),
            limit=plausible(small_numbers, texts | huge_ints.map(str)),
            status=st.sampled_from(["active", "expired", "gone"]), json=st.just(True),
        ),
    )  # fmt: skip
    fuzz(args, lambda reg, a: reg.run("ls", *a[0], *a[1], writes=False))


def test_fuzz_references() -> None:
    commands = st.sampled_from(
        [["show"], ["show", "--json"], ["get", "{ref}", "out", "--force"], ["lineage"],
         ["verify"], ["retention", "explain"], ["tag", "{ref}", "prod"]]
    )  # fmt: skip

    def body(reg: Registry, value: tuple[list[str], str]) -> None:
        command, reference = value
        args = [reference if part == "{ref}" else part for part in command]
        reg.run(*args, *([] if "{ref}" in command else [reference]))

    references = plausible(
        st.sampled_from(["existing/pkg", "existing/pkg@1", "existing/pkg:latest"]) | names
    )
    fuzz(st.tuples(commands, references), body)


def test_fuzz_events() -> None:
    number = plausible(small_numbers, texts | huge_ints.map(str))
    subjects = plausible(st.sampled_from(["package:x", "blob:blake3:00", "schema:report"]))
    args = options(since=number, limit=number, subject=subjects, json=st.just(True))
    fuzz(args, lambda reg, a: reg.run("events", *a, writes=False))


def test_fuzz_retention_set_and_holds() -> None:
    args = st.one_of(
        st.tuples(
            st.just(["retention", "set", "existing/pkg"]),
            options(
                expires_at=plausible(timestamps), reason=plausible(st.text(max_size=10)),
                override=st.just(True),
                **{"class": plausible(st.sampled_from(["transient", "permanent-record"]))},
            ),
        ),
        st.tuples(
            st.just(["hold", "existing/pkg"]),
            options(reason=plausible(st.text(min_size=1)), kind=texts),
        ),
        st.tuples(st.just(["release", "existing/pkg"]), options(hold=texts, reason=texts)),
    )  # fmt: skip
    fuzz(args, lambda reg, a: reg.run(*a[0], *a[1]))


def test_fuzz_sweep() -> None:
    args = options(
        now=plausible(timestamps), grace_seconds=plausible(small_numbers, huge_ints.map(str)),
        limit=plausible(small_numbers, texts | huge_ints.map(str)),
        dry_run=st.just(True), json=st.just(True),
    )  # fmt: skip
    fuzz(args, lambda reg, a: reg.run("retention", "sweep", *a))


SCHEMA_KEYWORDS = st.sampled_from(
    ["type", "properties", "pattern", "patternProperties", "$ref", "$defs", "items",
     "required", "maximum", "minLength", "enum", "$schema", "format", "additionalProperties"]
)  # fmt: skip
patterns = st.one_of(
    st.sampled_from(["^(a+)+$", "(a|aa)*", "^[a-z]+$", "(?>a+)+", "a*+b", "(.)\\1", "[", "\\"]),
    st.from_regex(r"[\^(a+|)*?\[\]\\.$]{0,12}", fullmatch=True),
)
schema_values = st.recursive(
    json_values | patterns | st.sampled_from(["#/$defs/x", "https://example.invalid/s"]),
    lambda children: (
        st.dictionaries(SCHEMA_KEYWORDS | texts, children, max_size=4)
        | st.lists(children, max_size=3)
    ),
    max_leaves=15,
)


def test_fuzz_schema_set_then_put() -> None:
    documents = st.one_of(schema_values.map(as_json), json_texts)

    def body(reg: Registry, value: tuple[str, str, str]) -> None:
        document, kind, metadata = value
        (reg.root / "schema.json").write_text(document, errors="surrogatepass")
        reg.run("schema", "set", kind, "schema.json")
        reg.run("put", "schema/pkg", "f.txt", "--kind", kind, "--metadata", metadata)

    kinds = plausible(st.sampled_from(["report", "custom-kind"]))
    fuzz(st.tuples(documents, kinds, plausible(safe_metadata, json_texts)), body)


def test_fuzz_settings() -> None:
    settings_env = st.fixed_dictionaries(
        {},
        optional={
            "ARTIFACTSTORE_GC_GRACE_SECONDS": texts | huge_ints.map(str),
            "ARTIFACTSTORE_FSYNC": texts,
            "ARTIFACTSTORE_ACTOR": texts,
            "ARTIFACTSTORE_DEFAULT_RETENTION_CLASS": texts,
            "ARTIFACTSTORE_S3_ADDRESSING_STYLE": texts,
            "ARTIFACTSTORE_DATABASE_URL": st.one_of(
                texts.map(lambda t: f"sqlite:///sub/{t}.db"),
                st.sampled_from(["sqlite:///f.txt", "sqlite:////proc/self/x/r.db",
                                 "postgresql+psycopg://u@127.0.0.1:1/db", "mysql://x/y",
                                 "sqlite://", "not a url"]),
                texts,
            ),
            "ARTIFACTSTORE_STORAGE_URL": st.one_of(
                texts.map(lambda t: f"store/{t}"),
                st.sampled_from(["f.txt", "f.txt/sub", "memory://fuzz", "ftp://x"]),
            ),
        },
    )  # fmt: skip

    def body(reg: Registry, env: dict[str, str]) -> None:
        # What an environment can hold: no NUL, and bytes that are not UTF-8 arrive as
        # surrogate escapes.
        clean = {
            k: v.replace("\x00", "")
            .encode("utf-8", "surrogatepass")
            .decode("utf-8", "surrogateescape")
            for k, v in env.items()
        }
        reg.run("put", "settings/pkg", "f.txt", env=clean)
        reg.run("ls", env=clean, writes=False)

    fuzz(settings_env, body)


# ------------------------------------------------------------------------- the library


PROVENANCE_KEYS = ("producer", "run_id", "code_version", "actor", "inputs", "attributes")


def test_fuzz_library_put(database_url: str, tmp_path: Path) -> None:
    """``put`` called with arbitrary Python values, on SQLite and PostgreSQL."""
    store = ArtifactStore.open(database_url, str(tmp_path / "blobs"))
    outcomes: Counter[str] = Counter()
    python_values = st.one_of(
        metadata_values,
        st.dictionaries(texts, st.sampled_from([{1, 2}, b"bytes", (1, 2), object()]), max_size=2),
        st.dictionaries(huge_ints, json_values, max_size=2),
    )
    calls = st.fixed_dictionaries(
        {
            "name": plausible(names),
            "files": st.dictionaries(plausible(names), st.binary(max_size=8), max_size=2),
        },
        optional={
            "metadata": plausible(st.dictionaries(st.text(max_size=8), safe_json), python_values),
            "provenance": st.fixed_dictionaries(
                {}, optional=dict.fromkeys(PROVENANCE_KEYS, python_values | texts | huge_ints)
            ),
            "retention_class": plausible(st.sampled_from(["transient", "permanent-record"])),
            "kind": plausible(st.sampled_from(["report", "log"])),
            "inputs": st.lists(texts, max_size=2),
            "actor": texts,
        },
    )  # fmt: skip
    try:

        @FUZZ
        @given(calls)
        def example(call: dict[str, Any]) -> None:
            before = (event_count(store), blob_count(store))
            try:
                store.put(call.pop("name"), call.pop("files"), **call)
            except ArtifactStoreError:
                event("refused")
                outcomes["refused"] += 1
                assert (event_count(store), blob_count(store)) == before
            else:
                event("stored")
                outcomes["stored"] += 1
                store.events(since=before[0])

        example()
        print(f"\noutcomes: {dict(outcomes)}")
        store.events()
        assert store.check_views() == []
        store.rebuild_views()
        assert store.check_views() == []
    finally:
        store.close()

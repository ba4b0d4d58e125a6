"""A put never registers bytes that are not where reads look (issue #11, items 3, 4, 9, 12).

Each test reproduces a path on which a command succeeded and a package then pointed at
missing or corrupt bytes, or a sweep purged what the log still needs.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore, PutRequest, Settings
from artifactstore_core.domain import events as ev
from artifactstore_core.errors import IntegrityError
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.schema import retention_holds, retention_state
from artifactstore_core.storage import BlobStore
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.testing.clock import FrozenClock
from tests.cli.test_cli import Cli

pytestmark = pytest.mark.integration


def _local(store: ArtifactStore) -> LocalBlobStore:
    assert isinstance(store.blobs, LocalBlobStore)
    return store.blobs


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-3], id="truncated"),
        pytest.param(lambda data: b"X" + data[1:], id="same-size"),
    ],
)
def test_a_corrupt_blob_is_rewritten_by_the_next_put_of_its_bytes(store: ArtifactStore, damage):  # type: ignore[no-untyped-def]
    data = b"the same bytes, twice" * 100
    first = store.put("first", {"f": data})
    path = _local(store).path(first.files[0].blob.blake3)
    path.write_bytes(damage(data))
    assert not store.verify(first.id).ok

    second = store.put("second", {"f": data})

    assert store.read_bytes(second.reference) == data
    assert store.read_bytes(first.reference) == data
    assert store.verify().ok


def test_verify_repair_copies_an_intact_copy_from_another_tier(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "hot"),
        tier_cold_url=str(tmp_path / "cold"),
    )
    with ArtifactStore.from_settings(settings) as store:
        moved = store.put("moved", {"f": b"shared bytes"})
        store.move_tier(moved.reference, "cold")
        staying = store.put("staying", {"f": b"shared bytes"})
        blob = staying.files[0].blob
        _local(store).path(blob.blake3).write_bytes(b"rotten bytes")
        assert not store.verify().ok

        repaired = store.verify(repair=True)

        assert [p.content_address for p in repaired.repaired] == [blob.content_address]
        assert repaired.ok
        assert store.read_bytes(staying.reference) == b"shared bytes"
        assert store.verify().ok


class _SweepWhileWriting(io.RawIOBase):
    """A source that, before handing over its bytes, waits until the other file of the
    same put is stored and then lets a sweep (grace 0) run from another registry handle:
    the sweep sees that blob as an orphan, exactly as a real concurrent sweep would."""

    def __init__(self, data: bytes, ready: Callable[[], bool], sweeper: ArtifactStore) -> None:
        self._data = io.BytesIO(data)
        self._ready = ready
        self._sweeper = sweeper
        self.swept: list[str] = []

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        if not self.swept:
            deadline = time.monotonic() + 20
            while not self._ready() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)  # the other write has returned
            result = self._sweeper.sweep(grace=dt.timedelta(0))
            self.swept.extend(d.content_address for d in result.deleted)
        return self._data.readinto(buffer)


def test_a_sweep_with_grace_zero_cannot_strip_a_put_in_flight(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, storage_url=str(tmp_path / "blobs"))
    with (
        ArtifactStore.from_settings(settings) as store,
        ArtifactStore.from_settings(settings) as sweeper,
    ):
        first = b"published first, not yet registered"
        target = _local(store).path(hash_bytes(first).blake3)
        source = _SweepWhileWriting(b"second file", target.exists, sweeper)
        package = store.put("in-flight", {"a.bin": first, "b.bin": io.BufferedReader(source)})

        assert source.swept == [hash_bytes(first).content_address]  # the race did happen
        assert store.read_bytes(package.reference, "a.bin") == first
        assert store.verify().ok
        assert store.check_views() == []


def test_a_blob_purged_by_a_sweep_between_write_and_commit_is_written_again(
    database_url: str, tmp_path: Path
) -> None:
    clock = FrozenClock()
    with (
        _grace_zero(database_url, tmp_path, clock) as store,
        _grace_zero(database_url, tmp_path, clock) as sweeper,
    ):
        reused = b"bytes of an expired package"
        store.put("old", {"f": reused}, retention_class="transient")
        clock.advance(dt.timedelta(days=8))
        target = _local(store).path(hash_bytes(reused).blake3)
        # The put finds the expired package's blob still there and reuses it; the sweep
        # then purges it before the put commits.
        assert target.exists()
        seen = [0]
        source = _SweepWhileWriting(b"other", lambda: seen[0] >= len(reused), sweeper)
        package = store.put_many(
            [PutRequest("new", {"f": reused, "g": io.BufferedReader(source)})],
            progress=lambda n: seen.__setitem__(0, seen[0] + n),
        )[0]
        assert hash_bytes(reused).content_address in source.swept
        assert store.read_bytes(package.reference, "f") == reused
        assert store.verify().ok


def _grace_zero(database_url: str, tmp_path: Path, clock: FrozenClock) -> ArtifactStore:
    settings = Settings(
        database_url=database_url, storage_url=str(tmp_path / "blobs"), gc_grace_seconds=0
    )
    return ArtifactStore.from_settings(settings, clock=clock)


def _held_and_due(store: ArtifactStore, clock: FrozenClock) -> str:
    package = store.put("held", {"f": b"evidence under a legal hold"}, retention_class="transient")
    store.place_hold(package.reference, reason="litigation 42")
    clock.advance(dt.timedelta(days=30))
    return str(package.id)


def test_a_sweep_does_not_trust_a_hold_removed_behind_the_log(
    database_url: str, tmp_path: Path
) -> None:
    clock = FrozenClock()
    with _grace_zero(database_url, tmp_path, clock) as store:
        package_id = _held_and_due(store, clock)
        with store.engine.begin() as conn:  # an edit of the views, not of the log
            conn.execute(sa.delete(retention_holds))
            conn.execute(sa.update(retention_state).values(on_hold=False))

        with pytest.raises(IntegrityError, match=package_id):
            store.sweep()

        assert store.blobs.exists(hash_bytes(b"evidence under a legal hold").blake3)
        assert store.describe("held").status == "active"


def test_a_sweep_does_not_trust_a_file_row_removed_behind_the_log(
    database_url: str, tmp_path: Path
) -> None:
    clock = FrozenClock()
    with _grace_zero(database_url, tmp_path, clock) as store:
        store.put("kept", {"f": b"shared"}, retention_class="permanent-record")
        store.put("gone", {"f": b"shared"}, retention_class="transient")
        clock.advance(dt.timedelta(days=30))
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "DELETE FROM artifact_files WHERE package_id IN "
                "(SELECT package_id FROM artifact_packages WHERE name = 'kept')"
            )

        with pytest.raises(IntegrityError, match="kept@1"):
            store.sweep()

        assert store.blobs.exists(hash_bytes(b"shared").blake3)


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[tuple[ArtifactStore, Cli]]:
    cli = Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs", tmp_path)
    with ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store:
        yield store, cli


def test_a_missing_blob_is_an_integrity_failure_naming_package_and_file(
    cli_env: tuple[ArtifactStore, Cli], tmp_path: Path
) -> None:
    store, cli = cli_env
    package = store.put("reports/daily", {"summary.csv": b"a,b\n", "other.txt": b"x"})
    entry = package.file("summary.csv")
    _local(store).path(entry.blob.blake3).unlink()

    with pytest.raises(IntegrityError, match=r"reports/daily@1.*summary\.csv"):
        store.read_bytes(package.reference, "summary.csv")

    result = cli("get", "reports/daily", str(tmp_path / "out"), expect=1)
    assert "reports/daily@1" in result.stderr and "summary.csv" in result.stderr
    assert not (tmp_path / "out" / "other.txt").exists()


def test_a_corrupt_blob_error_names_package_and_file(store: ArtifactStore) -> None:
    package = store.put("reports/weekly", {"data.bin": b"original bytes"})
    _local(store).path(package.files[0].blob.blake3).write_bytes(b"tampered bytes")
    with pytest.raises(IntegrityError, match=r"reports/weekly@1.*data\.bin.*corrupt"):
        store.read_bytes(package.reference)


def test_cli_verify_repair_exits_0_once_repaired(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "hot", tmp_path)
    cli.env["ARTIFACTSTORE_TIER_COLD_URL"] = str(tmp_path / "cold")
    cli("put", "archived", str(_file(tmp_path / "a.txt", b"kept twice")))
    cli("tier", "move", "archived", "--to", "cold")
    cli("put", "current", str(tmp_path / "a.txt"))
    blob = hash_bytes(b"kept twice").blake3
    LocalBlobStore(tmp_path / "hot").path(blob).unlink()
    cli("verify", "--all", expect=1)
    repaired = cli("verify", "--all", "--repair")
    assert "REPAIRED" in repaired.stderr and "current@1" in repaired.stderr
    cli("verify", "--all")


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tiered(
    database_url: str, tmp_path: Path, clock: FrozenClock, cold: BlobStore | None = None
) -> ArtifactStore:
    settings = Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "hot"),
        tier_cold_url=str(tmp_path / "cold"),
        gc_grace_seconds=0,
    )
    return ArtifactStore.from_settings(settings, clock=clock, tiers={"cold": cold} if cold else {})


def test_copies_no_package_in_their_tier_needs_are_collected(
    database_url: str, tmp_path: Path
) -> None:
    """A move killed after copying (unrecorded cold copies) or after its commit (hot copies
    still recorded) leaves copies that the next sweep must collect, tier by tier."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))  # orphans are aged by their files' mtime
    with _tiered(database_url, tmp_path, clock) as store:
        hot_package = store.put("stays-hot", {"f": b"copied to cold by a killed move"})
        cold = store.tiers["cold"]
        cold.write(io.BytesIO(b"copied to cold by a killed move"))
        moved = store.put("moved", {"f": b"moved, hot copy left recorded"})
        store.move_tier(moved.reference, "cold")
        left = store.blobs.write(io.BytesIO(b"moved, hot copy left recorded")).hash
        store.ledger.record(  # what a move killed before dropping its old copies leaves
            lambda _c, _n: [
                ev.BlobStored(content_address=left.content_address, backend="hot",
                              digest_sha256=left.sha256.hex, size=left.size,
                              uri=store.blobs.uri(left.blake3))
            ]
        )  # fmt: skip
        clock.advance(dt.timedelta(minutes=1))

        deleted = {(d.backend, d.content_address) for d in store.sweep().deleted}

        assert deleted == {
            ("cold", hot_package.files[0].blob.content_address),
            ("hot", left.content_address),
        }
        assert store.read_bytes("stays-hot") == b"copied to cold by a killed move"
        assert store.read_bytes("moved") == b"moved, hot copy left recorded"
        assert store.verify().ok and store.check_views() == []


class _SweepAfterFirstCopy(LocalBlobStore):
    """A cold tier during whose first write another registry handle sweeps (grace 0): the
    unrecorded copy just made is an orphan to that sweep, as with a real concurrent one."""

    sweeper: ArtifactStore | None = None

    def write(self, source, expected=None):  # type: ignore[no-untyped-def]
        stored = super().write(source, expected)
        if self.sweeper is not None:
            sweeper, self.sweeper = self.sweeper, None
            assert sweeper.sweep(grace=dt.timedelta(0)).deleted
        return stored


def test_a_tier_move_records_only_copies_still_there(database_url: str, tmp_path: Path) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    cold = _SweepAfterFirstCopy(tmp_path / "cold")
    with (
        _tiered(database_url, tmp_path, clock, cold=cold) as store,
        _tiered(database_url, tmp_path, clock) as sweeper,
    ):
        package = store.put("moving", {"a": b"first copy", "b": b"second copy"})
        cold.sweeper = sweeper
        clock.advance(dt.timedelta(minutes=1))  # the sweeper's clock runs ahead
        store.move_tier(package.reference, "cold")
        assert cold.sweeper is None  # the sweep did run between copy and commit
        assert store.read_bytes("moving", "a") == b"first copy"
        assert store.verify().ok

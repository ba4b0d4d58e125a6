"""The event log as a transparency log: its Merkle tree (against pymerkle as an
independent oracle), signed checkpoints that are never issued over a truncated or
rewritten log, inclusion proofs that verify offline, and consistency proofs.

Run on SQLite and on the PostgreSQL server the harness starts.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymerkle import InmemoryTree

from artifactstore_core import ArtifactStore, migrate
from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import Checkpoint, NoteSigner, NoteVerifier
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import CheckpointError, EventLogTamperedError, IntegrityError
from artifactstore_core.eventlog.chain import EventHeader, chain_input, split_chain_input
from artifactstore_core.eventlog.tree import TILE, LogTree, expected_subtrees
from artifactstore_core.ingest import PutRequest
from artifactstore_core.schema import events, log_subtrees

ORIGIN = "registry.example/test-log"


def _grow(store: ArtifactStore, packages: int, prefix: str = "n") -> None:
    """Register ``packages`` small packages in batches (several events each)."""
    for start in range(0, packages, 100):
        store.put_many(
            PutRequest(f"{prefix}/p{i}", {"a.txt": f"{prefix}{i}".encode()})
            for i in range(start, min(start + 100, packages))
        )


def _chain_inputs(store: ArtifactStore) -> list[bytes]:
    """Each event's chain input, computed here from its stored header."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(events).order_by(events.c.sequence)).mappings().all()
    return [chain_input(r["previous_digest"], EventHeader.from_row(r)) for r in rows]


def _stored(store: ArtifactStore, table: sa.Table = events) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        if table is events:
            query = sa.select(events.c.sequence, events.c.leaf_hash).order_by(events.c.sequence)
        else:
            query = sa.select(table).order_by(*table.primary_key.columns)
        return [tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)
                for row in conn.execute(query)]  # fmt: skip


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def grown(store: ArtifactStore) -> ArtifactStore:
    _grow(store, 300)
    assert store.verify_log().head_sequence > 2 * TILE + 1  # 3 tiles, the last incomplete
    return store


def test_the_tree_equals_an_independent_rfc6962_implementation(grown: ArtifactStore) -> None:
    data = _chain_inputs(grown)
    leaves = [merkle.leaf_hash(item) for item in data]
    oracle = InmemoryTree(algorithm="sha256")
    for item in data:
        oracle.append_entry(item)
    n = len(leaves)
    assert [leaf for _, leaf in _stored(grown)] == leaves
    with grown.engine.connect() as conn:
        tree = LogTree(conn)
        for size in (1, 2, 3, TILE - 1, TILE, TILE + 1, 2 * TILE, 2 * TILE + 1, n):
            assert tree.root(size) == oracle.get_root(size), size
        for index, size in ((0, n), (TILE - 1, n), (TILE, n), (n - 1, n), (5, 2 * TILE + 3)):
            path = tree.inclusion(index, size)
            theirs = oracle.prove_inclusion(index + 1, size).serialize()["path"]
            # pymerkle counts from 1 and starts its path with the leaf itself.
            assert path == [bytes.fromhex(h) for h in theirs[1:]], (index, size)
            assert merkle.verify_inclusion(leaves[index], index, size, path, tree.root(size))
        for old, new in ((1, n), (TILE, n), (TILE + 7, 2 * TILE), (2 * TILE + 1, n), (n, n)):
            proof = tree.consistency(old, new)
            assert merkle.verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    cached = {(h, p): head for h, p, head in _stored(grown, log_subtrees)}
    tiles = [merkle.root(leaves[i : i + TILE]) for i in range(0, n - n % TILE, TILE)]
    assert cached == {(h, p): head for h, p, head in expected_subtrees(tiles)}
    assert len(cached) >= 3  # two tiles and their parent


def test_the_migration_gives_old_events_the_leaves_and_heads_appends_give(
    grown: ArtifactStore, database_url: str
) -> None:
    leaves, heads = _stored(grown), _stored(grown, log_subtrees)
    command.downgrade(migrate.alembic_config(database_url), "0004")
    migrate.upgrade(database_url)
    assert _stored(grown) == leaves
    assert _stored(grown, log_subtrees) == heads
    assert grown.verify_log().checked == len(leaves)


def test_log_verify_catches_a_changed_leaf_or_cached_head(grown: ArtifactStore) -> None:
    with grown.engine.begin() as conn:
        conn.execute(sa.update(log_subtrees).where(log_subtrees.c.height == 8,
                                                   log_subtrees.c.position == 1)
                     .values(hash=bytes(32)))  # fmt: skip
    with pytest.raises(IntegrityError, match="height 8, position 1 is not the head"):
        grown.verify_log()
    with grown.engine.begin() as conn:
        conn.execute(sa.update(events).where(events.c.sequence == 7).values(leaf_hash=bytes(32)))
    with pytest.raises(EventLogTamperedError, match=r"7.*leaf hash does not match"):
        grown.verify_log()


def test_checkpoints_extend_each_other_and_prove_inclusion_offline(
    store: ArtifactStore, signer: NoteSigner
) -> None:
    verifier = NoteVerifier.parse(signer.verifier_key)
    first = store.put("reports/day", {"r.csv": b"a,b\n"})
    old = store.checkpoint(signer)
    assert store.checkpoint(signer) == old  # the log has not grown: the same checkpoint
    assert Checkpoint.parse(verifier.verify(old.note)) == old.checkpoint
    _grow(store, 30)
    new = store.checkpoint(signer)
    assert new.checkpoint.size > old.checkpoint.size
    assert store.latest_checkpoint(ORIGIN) == new

    store.log_signer = signer
    proof = TlogProof.parse(store.prove_package(first).to_text())
    assert proof.verify(verifier) == new.checkpoint  # no database needed from here
    fields = split_chain_input(proof.extra or b"")
    assert (fields["event_type"], fields["subject_id"]) == ("PackageRegistered", str(first.id))

    result = store.prove_consistency(old.note, verifier)
    assert (result.old, result.new) == (old.checkpoint, new)
    assert merkle.verify_consistency(
        old.checkpoint.size, new.checkpoint.size, old.checkpoint.root, new.checkpoint.root,
        result.proof,
    )  # fmt: skip
    assert store.verify_log().checkpoints == 1


def test_a_proof_or_checkpoint_altered_anywhere_fails(
    store: ArtifactStore, signer: NoteSigner
) -> None:
    verifier = NoteVerifier.parse(signer.verifier_key)
    _grow(store, 5)
    store.log_signer = signer
    good = store.prove(3)
    good.verify(verifier)
    other_origin = NoteSigner("elsewhere.example/log", signer.private_key)
    stranger = NoteVerifier.parse(NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier_key)
    path = list(good.path)
    path[0] = bytes(32)
    note = good.checkpoint_note
    resigned = other_origin.sign(note.split("\n\n")[0] + "\n")
    cases = {
        "path": (good.index, tuple(path), note, good.extra, verifier),
        "index": (good.index + 1, good.path, note, good.extra, verifier),
        "extra": (good.index, good.path, note, b"x" + (good.extra or b""), verifier),
        "checkpoint": (good.index, good.path, note.replace("\n", "\n1", 1), good.extra, verifier),
        "key": (good.index, good.path, note, good.extra, stranger),
        "origin": (good.index, good.path, resigned, good.extra,
                   NoteVerifier.parse(other_origin.verifier_key)),
    }  # fmt: skip
    for what, (index, hashes, checkpoint, extra, key) in cases.items():
        proof = TlogProof(index, hashes, checkpoint, extra)
        with pytest.raises(CheckpointError):
            TlogProof.parse(proof.to_text()).verify(key)
            pytest.fail(f"an altered {what} verified")


def test_a_truncated_or_rewritten_log_is_never_signed_and_fails_verification(
    store: ArtifactStore, signer: NoteSigner
) -> None:
    verifier = NoteVerifier.parse(signer.verifier_key)
    _grow(store, 20)
    old = store.checkpoint(signer)
    size = old.checkpoint.size
    with store.engine.begin() as conn:  # the tail goes
        conn.execute(sa.delete(events).where(events.c.sequence > size - 3))
    for attempt in (lambda: store.checkpoint(signer), store.verify_log,
                    lambda: store.prove_consistency(old.note, verifier)):  # fmt: skip
        with pytest.raises(EventLogTamperedError, match="its tail was removed"):
            attempt()
    _grow(store, 10, prefix="forged")  # a rewritten history, longer than the checkpoint
    for attempt in (lambda: store.checkpoint(signer), store.verify_log,
                    lambda: store.prove_consistency(old.note, verifier)):  # fmt: skip
        with pytest.raises(EventLogTamperedError, match="history was rewritten"):
            attempt()
    assert store.latest_checkpoint(ORIGIN) == old  # nothing was signed


def test_a_sweep_signs_a_checkpoint_when_a_log_key_is_configured(
    store: ArtifactStore, signer: NoteSigner
) -> None:
    store.log_signer = signer
    store.put("tmp/x", {"x": b"x"}, retention_class="summary-evidence")
    result = store.sweep(store.clock() + dt.timedelta(days=3650))
    assert result.checkpoint is not None
    assert result.checkpoint == store.latest_checkpoint()
    assert result.checkpoint.checkpoint.size == store.verify_log().head_sequence
    assert result.to_dict()["checkpoint"]["size"] == result.checkpoint.checkpoint.size

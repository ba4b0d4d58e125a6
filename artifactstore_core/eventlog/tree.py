"""The log's RFC 9162 Merkle tree over SHA-256, kept beside the hash chain.

Leaf ``i`` is event ``i + 1``: its hash, ``SHA-256(0x00 ‖ chain input)``, is persisted
in ``events.leaf_hash`` when the event is appended. The head of every complete subtree
of 256 leaves and more (aligned as in tlog-tiles) is cached in ``log_subtrees`` as it
completes, so a head or a proof reads one tile of at most 256 leaf hashes and a few
dozen cached heads, whatever the size of the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from artifactstore_core.compiled_sql import WriteBatch, insert_all
from artifactstore_core.domain import merkle
from artifactstore_core.errors import IntegrityError
from artifactstore_core.eventlog.chain import EventHeader, chain_input
from artifactstore_core.schema import events, log_subtrees

TILE_HEIGHT = 8
TILE = 1 << TILE_HEIGHT
_BATCH = 5_000


class LogTree:
    """Heads and proofs of the tree over the events ``conn`` sees (memoised per instance)."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._tiles: dict[int, list[bytes]] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._recording: tuple[set[int], set[tuple[int, int]]] | None = None

    def prefetch(self, work: Callable[[], object]) -> None:
        """Read in two queries every tile and cached head ``work`` (calls on this tree)
        will need: ``work`` runs once against placeholders to find out which."""
        tiles: set[int] = set()
        nodes: set[tuple[int, int]] = set()
        self._recording = (tiles, nodes)
        try:
            work()
        finally:
            self._recording = None
        tiles -= self._tiles.keys()
        nodes -= self._nodes.keys()
        if tiles:
            ranges = [events.c.sequence.between(t * TILE + 1, (t + 1) * TILE) for t in tiles]
            rows = self._conn.execute(
                sa.select(events.c.sequence, events.c.leaf_hash)
                .where(sa.or_(*ranges))
                .order_by(events.c.sequence)
            ).all()
            for tile in tiles:
                first = tile * TILE + 1
                self._tiles[tile] = _contiguous(
                    first, [r for r in rows if first <= r[0] < first + TILE]
                )
        if nodes:
            table = log_subtrees
            for height, position, head in self._conn.execute(
                sa.select(table.c.height, table.c.position, table.c.hash).where(
                    sa.tuple_(table.c.height, table.c.position).in_(sorted(nodes))
                )
            ):
                self._nodes[(height, position)] = bytes(head)

    def root(self, size: int) -> bytes:
        """The tree head over the first ``size`` events."""
        return self.range_root(0, size) if size else merkle.EMPTY_ROOT

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` (event ``index + 1``) in the tree of ``size``."""
        return merkle.inclusion_path(index, size, self.range_root)

    def consistency(self, old_size: int, size: int) -> list[bytes]:
        """The proof that the tree of ``old_size`` events is a prefix of the tree of ``size``."""
        return merkle.consistency_path(old_size, size, self.range_root)

    def leaf(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        tile = self._tile(index // TILE)
        if index % TILE >= len(tile):
            raise IntegrityError(f"the log has no event {index + 1}")
        return tile[index % TILE]

    def range_root(self, start: int, end: int) -> bytes:
        """The head of the subtree over leaves ``start`` to ``end`` (exclusive)."""
        n = end - start
        if n >= TILE and n & (n - 1) == 0 and start % n == 0:
            return self.subtree(n.bit_length() - 1, start // n)
        if n <= TILE and start // TILE == (end - 1) // TILE:
            if self._recording is not None:
                self._recording[0].add(start // TILE)
                return _PLACEHOLDER
            base = start // TILE * TILE
            leaves = self._tile(start // TILE)
            if end - base > len(leaves):
                raise IntegrityError(f"the log has {base + len(leaves)} events, not {end}")
            return merkle.root(leaves[start - base : end - base])
        k = 1 << ((n - 1).bit_length() - 1)
        return merkle.node_hash(self.range_root(start, start + k), self.range_root(start + k, end))

    def subtree(self, height: int, position: int) -> bytes:
        """The cached head of the complete subtree of ``2**height`` leaves at ``position``
        (``height`` >= 8); computed from the level below when it is not cached."""
        key = (height, position)
        if self._recording is not None:
            self._recording[1].add(key)
            return _PLACEHOLDER
        if key not in self._nodes:
            cached = self._conn.execute(
                sa.select(log_subtrees.c.hash).where(
                    log_subtrees.c.height == height, log_subtrees.c.position == position
                )
            ).scalar()
            if cached is None:
                cached = self._compute(height, position)
            self._nodes[key] = bytes(cached)
        return self._nodes[key]

    def _compute(self, height: int, position: int) -> bytes:
        if height == TILE_HEIGHT:
            leaves = self._tile(position)
            if len(leaves) < TILE:
                raise IntegrityError(
                    f"the log has {position * TILE + len(leaves)} events, "
                    f"not {(position + 1) * TILE}"
                )
            return merkle.root(leaves)
        return merkle.node_hash(
            self.subtree(height - 1, 2 * position), self.subtree(height - 1, 2 * position + 1)
        )

    def _tile(self, tile: int) -> list[bytes]:
        """The leaf hashes of events ``tile * 256 + 1`` to ``(tile + 1) * 256`` present, in
        order; a missing event inside the tile is an ``IntegrityError``."""
        if self._recording is not None:
            self._recording[0].add(tile)
            return [_PLACEHOLDER] * TILE
        if tile not in self._tiles:
            first = tile * TILE + 1
            rows = self._conn.execute(
                sa.select(events.c.sequence, events.c.leaf_hash)
                .where(events.c.sequence.between(first, first + TILE - 1))
                .order_by(events.c.sequence)
            ).all()
            self._tiles[tile] = _contiguous(first, rows)
        return self._tiles[tile]

    def extend(self, old_size: int, leaves: Sequence[bytes], writes: WriteBatch) -> None:
        """Queue in ``writes`` the heads of the subtrees that the leaves appended after
        ``old_size`` complete (reading only leaves and heads from before ``old_size``)."""
        new_size = old_size + len(leaves)
        rows: list[dict[str, object]] = []
        for end in range((old_size // TILE + 1) * TILE, new_size + 1, TILE):
            position, height = end // TILE - 1, TILE_HEIGHT
            start = position * TILE
            earlier = self._tile(position)[: max(old_size - start, 0)] if start < old_size else []
            node = merkle.root([*earlier, *leaves[max(start - old_size, 0) : end - old_size]])
            while True:
                self._nodes[(height, position)] = node
                rows.append({"height": height, "position": position, "hash": node})
                if not position & 1:
                    break
                node = merkle.node_hash(self.subtree(height, position - 1), node)
                height, position = height + 1, position // 2
        writes.add(insert_all(log_subtrees, self._conn.dialect), rows)


_PLACEHOLDER = bytes(32)


def _contiguous(first: int, rows: Sequence[Any]) -> list[bytes]:
    """The leaf hashes of ``(sequence, leaf_hash)`` rows from ``first`` on; a missing
    event among them is an ``IntegrityError``."""
    for offset, (sequence, _) in enumerate(rows):
        if sequence != first + offset:
            raise IntegrityError(f"the log has no event {first + offset}")
    return [bytes(leaf) for _, leaf in rows]


def expected_subtrees(tile_heads: Sequence[bytes]) -> Iterable[tuple[int, int, bytes]]:
    """``(height, position, head)`` of every complete subtree of 256 leaves and more,
    given the heads of the complete tiles in order."""
    level, height = list(tile_heads), TILE_HEIGHT
    while level:
        yield from ((height, position, head) for position, head in enumerate(level))
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        height += 1


def check_subtrees(conn: sa.Connection, tile_heads: Sequence[bytes]) -> None:
    """``IntegrityError`` naming the first cached head that differs from the leaves."""
    expected = {(h, p): head for h, p, head in expected_subtrees(tile_heads)}
    cached = {
        (row.height, row.position): bytes(row.hash) for row in conn.execute(sa.select(log_subtrees))
    }
    for key in sorted(expected.keys() | cached.keys()):
        if expected.get(key) != cached.get(key):
            state = "missing" if key not in cached else "not the head of its leaves"
            raise IntegrityError(
                f"cached subtree head at height {key[0]}, position {key[1]} is {state}"
            )


def backfill_leaves(conn: sa.Connection) -> None:
    """Compute the leaf hash of every event without one, and the subtree heads (used by
    the migration that introduced them; events are read as stored)."""
    table = events
    update = (
        sa.update(table)
        .where(table.c.sequence == sa.bindparam("target"))
        .values(leaf_hash=sa.bindparam("leaf"))
    )
    columns = [table.c.previous_digest, *(table.c[name] for name in _HEADER)]
    last, tree = 0, LogTree(conn)
    while True:
        rows = conn.execute(
            sa.select(*columns)
            .where(table.c.sequence > last)
            .order_by(table.c.sequence)
            .limit(_BATCH)
        ).mappings()
        sequences, leaves = [], []
        for row in rows:
            sequences.append(row["sequence"])
            header = EventHeader.from_row(row)
            leaves.append(merkle.leaf_hash(chain_input(row["previous_digest"], header)))
        if not sequences:
            return
        conn.execute(
            update, [{"target": s, "leaf": leaf} for s, leaf in zip(sequences, leaves, strict=True)]
        )
        heads = WriteBatch()
        tree.extend(last, leaves, heads)
        heads.run(conn)
        last = sequences[-1]


_HEADER = (
    "sequence", "created_at", "event_type", "schema_version",
    "subject_kind", "subject_id", "actor", "payload_digest",
)  # fmt: skip

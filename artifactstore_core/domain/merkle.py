"""RFC 9162 (RFC 6962) Merkle trees over SHA-256: tree heads, inclusion and consistency
proofs, and their verification. Pure functions over leaf hashes; no I/O.

The tree of ``n`` leaves splits at ``k``, the largest power of two below ``n``
(section 2.1.1). ``leaf_hash`` is ``SHA-256(0x00 ‖ data)``, an inner node
``SHA-256(0x01 ‖ left ‖ right)``. Proofs list sibling hashes from the leaf (or the old
tree's boundary) up to the root, as sections 2.1.3 and 2.1.4 generate them; the
verifiers are the algorithms of sections 2.1.3.2 and 2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from artifactstore_core.errors import InvalidInputError

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The head of the empty tree (section 2.1.1)."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf with content ``data``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


RangeRoot = Callable[[int, int], bytes]
"""The head of the subtree over leaves ``start`` (inclusive) to ``end`` (exclusive)."""


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree head of these leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def range_root_of(leaves: Sequence[bytes]) -> RangeRoot:
    """The ``RangeRoot`` of a tree whose leaf hashes are all in memory."""
    return lambda start, end: root(leaves[start:end])


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (section 2.1.3.1)."""
    return inclusion_path(index, len(leaves), range_root_of(leaves))


def inclusion_path(index: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves, from the leaf's
    sibling up; ``range_root`` gives the head of each sibling subtree."""
    _check_index(index, size)
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_root(start + k, end))
            end = start + k
        else:
            path.append(range_root(start, start + k))
            start += k
    return path[::-1]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of the first ``old_size`` leaves is a prefix of the tree
    of ``leaves`` (section 2.1.4.1)."""
    return consistency_path(old_size, len(leaves), range_root_of(leaves))


def consistency_path(old_size: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """The consistency proof from the tree of ``old_size`` leaves to the tree of
    ``size`` leaves (SUBPROOF of section 2.1.4.1, unrolled)."""
    if not 0 < old_size <= size:
        raise InvalidInputError(
            f"a consistency proof needs 0 < old size <= new size, got {old_size} and {size}"
        )
    path: list[bytes] = []
    start, end, m, complete = 0, size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(range_root(start + k, end))
            end = start + k
        else:
            path.append(range_root(start, start + k))
            m, start, complete = m - k, start + k, False
    if not complete:
        path.append(range_root(start, end))
    return path[::-1]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size``
    leaves whose head is ``expected_root`` (section 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == expected_root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Whether ``proof`` shows the tree of ``old_size`` leaves with head ``old_root`` to
    be a prefix of the tree of ``new_size`` leaves with head ``new_root`` (2.1.4.2)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old head starts the path
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise InvalidInputError(f"leaf index {index} is outside a tree of {size} leaves")

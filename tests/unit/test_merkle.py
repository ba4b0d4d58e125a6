"""RFC 9162 Merkle trees (``domain.merkle``) against pymerkle, an independent
implementation, as the oracle: the same heads at every size and the same audit paths;
proofs verify, and any change to a proof, leaf, index, size or head is refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from artifactstore_core.domain import merkle
from artifactstore_core.errors import InvalidInputError

DATA = [bytes([i]) * i for i in range(40)]
LEAVES = [merkle.leaf_hash(d) for d in DATA]


@pytest.fixture(scope="module")
def oracle() -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")
    for item in DATA:
        tree.append_entry(item)
    return tree


def test_heads_and_audit_paths_equal_the_oracles(oracle: InmemoryTree) -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    for size in range(1, len(DATA) + 1):
        assert merkle.root(LEAVES[:size]) == oracle.get_root(size), size
        for index in range(size):
            theirs = oracle.prove_inclusion(index + 1, size).serialize()["path"]
            # pymerkle counts from 1 and starts its path with the leaf itself.
            assert [bytes.fromhex(h) for h in theirs[1:]] == merkle.inclusion_proof(
                index, LEAVES[:size]
            ), (index, size)


def test_every_inclusion_proof_verifies_and_a_changed_one_does_not() -> None:
    for size in range(1, 24):
        head = merkle.root(LEAVES[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(index, LEAVES[:size])
            leaf = LEAVES[index]
            assert merkle.verify_inclusion(leaf, index, size, proof, head)
            assert not merkle.verify_inclusion(LEAVES[index - 1] if size > 1 else b"x" * 32,
                                               index, size, proof, head)  # fmt: skip
            # (The tree size is bound by the signed checkpoint, not by the path: a path
            # can fit two sizes of the same shape, as in RFC 9162.)
            assert not merkle.verify_inclusion(leaf, size, size, proof, head)
            if proof:
                assert not merkle.verify_inclusion(leaf, index, size, proof[:-1], head)
                bent = [*proof[:-1], bytes(32)]
                assert not merkle.verify_inclusion(leaf, index, size, bent, head)


def test_every_consistency_proof_verifies_and_a_forked_tree_does_not() -> None:
    forked = [*LEAVES[:5], merkle.leaf_hash(b"rewritten"), *LEAVES[6:]]
    for new in range(1, 24):
        for old in range(1, new + 1):
            proof = merkle.consistency_proof(old, LEAVES[:new])
            old_head, new_head = merkle.root(LEAVES[:old]), merkle.root(LEAVES[:new])
            assert merkle.verify_consistency(old, new, old_head, new_head, proof), (old, new)
            if new > 5:  # history rewritten at leaf 5: the new head cannot extend the old
                other = merkle.root(forked[:new])
                assert not merkle.verify_consistency(old, new, old_head, other, proof)
            if old < new:
                assert not merkle.verify_consistency(old, new, new_head, new_head, proof)
                assert not merkle.verify_consistency(old, new, old_head, new_head, proof[1:])


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=64), st.data())
def test_random_trees(items: list[bytes], data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i) for i in items]
    index = data.draw(st.integers(0, len(leaves) - 1))
    old = data.draw(st.integers(1, len(leaves)))
    head = merkle.root(leaves)
    assert merkle.verify_inclusion(
        leaves[index], index, len(leaves), merkle.inclusion_proof(index, leaves), head
    )
    proof = merkle.consistency_proof(old, leaves)
    assert merkle.verify_consistency(old, len(leaves), merkle.root(leaves[:old]), head, proof)


def test_bad_sizes_are_refused_naming_them() -> None:
    with pytest.raises(InvalidInputError, match="leaf index 3 is outside a tree of 3 leaves"):
        merkle.inclusion_proof(3, LEAVES[:3])
    with pytest.raises(InvalidInputError, match="got 4 and 3"):
        merkle.consistency_proof(4, LEAVES[:3])
    assert not merkle.verify_consistency(0, 3, merkle.EMPTY_ROOT, merkle.root(LEAVES[:3]), [])


# Certificate Transparency's reference vectors (RFC 6962 test data): eight leaves and
# the head of each prefix of them.
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]  # fmt: skip
CT_HEADS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_certificate_transparency_reference_heads() -> None:
    leaves = [merkle.leaf_hash(d) for d in CT_LEAVES]
    assert [merkle.root(leaves[:n]).hex() for n in range(1, 9)] == CT_HEADS

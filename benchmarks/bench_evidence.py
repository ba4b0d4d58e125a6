"""Verifiable evidence (issue #15): what the log's Merkle tree costs and how fast proofs,
checkpoints and offline bundles are.

1. Leaf hashing at append: ``put_many`` (batches of 100) and one ``put`` per package of
   1 KiB packages into fresh SQLite registries, with the tree (as shipped) and with the
   leaf hash and subtree caching switched off in this process, interleaved round by
   round. Target: the tree costs <= 5% of either rate (rate ratio >= 0.95).
2. A log of 1,000,000 events (appended directly, in batches of 5,000) on SQLite and on
   PostgreSQL: an inclusion proof of a random event against a checkpoint of the whole log
   (``transparency.inclusion_proof``: the event, its audit path, the check that the log
   extends the checkpoint), median of 200 (target < 10 ms); a checkpoint after one more
   event (consistency with the previous one checked, signed, stored), median of 20
   (target < 50 ms).
3. A package of one 1 GiB file: ``evidence export`` (to a directory and to a tar file)
   and ``evidence verify`` of each, against ``hashlib.sha256`` over the same bytes read
   from the same file, interleaved. Target: each <= 1.5x.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

from _common import (
    Samples,
    header,
    median,
    new_postgres_database,
    parser,
    rotated,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    verdict,
    write_results,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.domain import events as ev
from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import NoteSigner, NoteVerifier
from artifactstore_core.eventlog import log as log_module
from artifactstore_core.eventlog.tree import LogTree
from artifactstore_core.evidence.bundle import verify_bundle
from artifactstore_core.evidence.keys import generate_keypair, load_public_key, load_signer
from artifactstore_core.testing.servers import postgres_server
from artifactstore_core.transparency import inclusion_proof

ORIGIN = "bench.example/log"
PUT_TARGET, PROOF_TARGET_MS, CHECKPOINT_TARGET_MS, BUNDLE_TARGET = 0.95, 10.0, 50.0, 1.5


# ---------------------------------------------------------------------------- 1. puts
@contextlib.contextmanager
def without_tree() -> Iterator[None]:
    """Appends in this process skip the leaf hash (a constant is stored) and the subtree
    cache: the baseline of what the tree costs."""
    extend, module = LogTree.extend, log_module.merkle
    LogTree.extend = lambda self, old_size, leaves: None  # type: ignore[method-assign]
    log_module.merkle = SimpleNamespace(leaf_hash=lambda data: bytes(32))  # type: ignore[assignment]
    try:
        yield
    finally:
        LogTree.extend, log_module.merkle = extend, module  # type: ignore[method-assign]


def put_rates(root: Path, packages: int, singles: int) -> tuple[float, float]:
    """Packages/second with ``put_many`` and with one ``put`` each, into a fresh registry."""
    contents = [os.urandom(1024) for _ in range(packages)]
    with (
        temp_dir(root, "puts") as work,
        ArtifactStore.open(sqlite_url(work / "r.db"), str(work / "blobs")) as store,
    ):
        settle()
        many, _ = timed(lambda: [
            store.put_many(PutRequest(f"b/{i % 1000}", {"p": contents[i]})
                           for i in range(start, min(start + 100, packages)))
            for start in range(0, packages, 100)
        ])  # fmt: skip
        one, _ = timed(lambda: [store.put(f"s/{i % 1000}", {"p": contents[i]})
                                for i in range(singles)])  # fmt: skip
    return packages / many, singles / one


def bench_puts(root: Path, rounds: int, packages: int, singles: int) -> list[tuple[str, bool]]:
    samples = Samples()
    for index in range(rounds):
        for variant in rotated(["tree", "no tree"], index):
            context = without_tree() if variant == "no tree" else contextlib.nullcontext()
            with context:
                many, one = put_rates(root, packages, singles)
            samples.add(f"put_many, {variant}", many)
            samples.add(f"put, {variant}", one)
    rows, checks = [], []
    for kind in ("put_many", "put"):
        ratio = samples.median(f"{kind}, tree") / samples.median(f"{kind}, no tree")
        for variant in ("tree", "no tree"):
            name = f"{kind}, {variant}"
            rows.append((name, samples.median(name), samples.spread(name)))
        checks.append((f"{kind} with the tree at {ratio:.3f}x the rate without (>= "
                       f"{PUT_TARGET})", ratio >= PUT_TARGET))  # fmt: skip
    table(["packages/s (SQLite, 1 KiB)", "median", "min-max"], rows)
    return checks


# ---------------------------------------------------------------------------- 2. proofs
def fill_log(store: ArtifactStore, events: int) -> None:
    """Append ``events`` PackageRetrieved events straight to the log (no projection)."""
    package = str(uuid.uuid4())
    done = 0
    while done < events:
        batch = [ev.PackageRetrieved(package_id=package, purpose=f"r{done + i}")
                 for i in range(min(5_000, events - done))]  # fmt: skip
        with store.ledger.locked() as conn:
            store.log.append(conn, batch, actor="bench", at=store.clock())
        done += len(batch)
        if done % 100_000 == 0:
            print(f"   ... {done:,} events", flush=True)


def bench_proofs(label: str, store: ArtifactStore, events: int) -> list[tuple[str, bool]]:
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    verifier = NoteVerifier.parse(signer.verifier_key)
    seconds, _ = timed(lambda: fill_log(store, events))
    print(f"   {label}: appended {events:,} events in {seconds:.0f} s")
    checkpoint = store.checkpoint(signer)
    size = checkpoint.checkpoint.size
    proofs = []
    for sequence in random.sample(range(1, size + 1), 200):
        took, proof = timed(lambda s=sequence: inclusion_proof(store.ledger, s, checkpoint))
        proofs.append(took * 1000)
        if not merkle.verify_inclusion(merkle.leaf_hash(proof.extra), proof.index, size,
                                       proof.path, checkpoint.checkpoint.root):  # fmt: skip
            raise AssertionError(f"the proof of event {sequence} does not verify")
    signing = []
    for _ in range(20):
        fill_log(store, 1)
        took, signed = timed(lambda: store.checkpoint(signer))
        signing.append(took * 1000)
        verifier.verify(signed.note)
    table([f"{label}, {size:,} events", "median ms", "min-max ms"], [
        ("inclusion proof (200)", median(proofs), f"{min(proofs):.2f}-{max(proofs):.2f}"),
        ("checkpoint (20)", median(signing), f"{min(signing):.2f}-{max(signing):.2f}"),
    ])  # fmt: skip
    return [
        (f"{label}: inclusion proof {median(proofs):.2f} ms median (< {PROOF_TARGET_MS})",
         median(proofs) < PROOF_TARGET_MS),
        (f"{label}: checkpoint {median(signing):.2f} ms median (< {CHECKPOINT_TARGET_MS})",
         median(signing) < CHECKPOINT_TARGET_MS),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- 3. bundles
def write_random(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for _ in range(size >> 20):
            out.write(block[:-8] + os.urandom(8))


def sha256_of(path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)


def bench_bundles(root: Path, rounds: int, size: int) -> list[tuple[str, bool]]:
    samples = Samples()
    with temp_dir(root, "bundle") as work:
        data = work / "big.bin"
        write_random(data, size)
        private, public = generate_keypair(work / "signing")
        signer, key = load_signer(str(private)), load_public_key(public)
        log_signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        verifier = NoteVerifier.parse(log_signer.verifier_key)
        with ArtifactStore.open(sqlite_url(work / "r.db"), str(work / "blobs"),
                                log_signer=log_signer) as store:  # fmt: skip
            store.put("big/one", {"big.bin": data})
            store.checkpoint()
            steps: dict[str, Callable[[], object]] = {
                "sha256 of the file": lambda: sha256_of(data),
                "export to a directory": lambda: store.export_evidence(
                    "big/one", work / "out" / "dir", signer=signer),
                "export to a tar file": lambda: store.export_evidence(
                    "big/one", work / "out" / "b.tar", signer=signer),
                "verify the directory": lambda: verify_bundle(
                    work / "out" / "dir", keys=[key], log_verifier=verifier),
                "verify the tar file": lambda: verify_bundle(
                    work / "out" / "b.tar", keys=[key], log_verifier=verifier),
            }  # fmt: skip
            for index in range(rounds):
                shutil.rmtree(work / "out", ignore_errors=True)
                order = rotated(list(steps)[:3], index) + rotated(list(steps)[3:], index)
                for name in order:
                    settle()
                    samples.add(name, timed(steps[name])[0])
    base = samples.median("sha256 of the file")
    rows, checks = [], []
    for name in samples.values:
        ratio = samples.median(name) / base
        rows.append((name, size / samples.median(name) / 2**20, samples.spread(name), ratio))
        if name != "sha256 of the file":
            checks.append((f"{name} at {ratio:.2f}x sha256 (<= {BUNDLE_TARGET}x)",
                           ratio <= BUNDLE_TARGET))  # fmt: skip
    table([f"{size >> 20} MiB package", "MiB/s", "min-max s", "x sha256"], rows)
    return checks


def main() -> int:
    arguments = parser(__doc__ or "").parse_args()
    quick = arguments.quick
    events = 20_000 if quick else 1_000_000
    rounds = 2 if quick else 5
    size = (64 if quick else 1024) << 20
    header("evidence: the log's tree, proofs, checkpoints, bundles", quick,
           events=f"{events:,}", bundle=f"{size >> 20} MiB")  # fmt: skip
    root = temp_root(arguments.tmpdir)
    checks = bench_puts(root, rounds, 500 if quick else 3_000, 100 if quick else 500)
    with (
        temp_dir(root, "proofs") as work,
        ArtifactStore.open(sqlite_url(work / "r.db"), str(work / "blobs")) as store,
    ):
        checks += bench_proofs("SQLite", store, events)
    with postgres_server() as server, temp_dir(root, "pg") as work:
        url = new_postgres_database(server.url(), "bench_evidence")
        with ArtifactStore.open(url, str(work / "blobs")) as store:
            checks += bench_proofs("PostgreSQL", store, events)
    checks += bench_bundles(root, 3 if not quick else 2, size)
    write_results("bench_evidence", [], checks, quick)  # its figures are in its checks
    return verdict(checks, quick)


if __name__ == "__main__":
    raise SystemExit(main())

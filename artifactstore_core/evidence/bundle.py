"""Offline evidence bundles: everything an auditor needs to check a package with no
registry and no network, given only the signers' public keys and the log's verifier key.

A bundle is a directory, or a tar archive of one::

    bundle.json                 format and the package it is about (an index, not trusted)
    manifest.json               the canonical manifest: its digest is the package's identity
    files/<path>                the package's files
    attestations.intoto.jsonl   DSSE envelopes of in-toto statements, one per line
    registration.cbor           the payload of the event that registered the package
    registration.tlog-proof     the C2SP proof that this event is in the log, with a
                                signed checkpoint
    keys/                       the public keys used (for reference: verify with your own)

``verify_bundle`` checks, in this order: the checkpoint's signature and the inclusion
proof; that the proven event registered this manifest (event payload digest, package
digest); every file against the manifest (size and SHA-256, no file missing or extra);
that a statement signed by a given key names this package and these files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from securesystemslib.signer import Signer, SSlibKey

from artifactstore_core.domain.checkpoint import Checkpoint, NoteVerifier
from artifactstore_core.domain.manifest import canonical_json, manifest_document, package_digest
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.statement import parse_statement, statement_subjects
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import (
    CheckpointError,
    EvidenceError,
    IntegrityError,
    InvalidInputError,
)
from artifactstore_core.eventlog import codec
from artifactstore_core.eventlog.chain import split_chain_input
from artifactstore_core.evidence.dsse import sign_envelope, verify_envelope
from artifactstore_core.evidence.keys import public_pem

FORMAT = "artifactstore-bundle/v1"
INDEX, MANIFEST, ENVELOPES = "bundle.json", "manifest.json", "attestations.intoto.jsonl"
EVENT, PROOF, FILES = "registration.cbor", "registration.tlog-proof", "files/"
MAX_PART = 64 << 20  # the largest non-file part read into memory
CHUNK = 1 << 20


class BundleSource(Protocol):
    """What a bundle is exported from (an ``ArtifactStore``)."""

    def describe(self, reference: Reference) -> Package: ...

    def copy_file(
        self, reference: Reference, path: str | None, target_fd: int, offset: int
    ) -> None: ...

    def record_retrieval(
        self, package: Package, *, actor: str | None = None, purpose: str | None = None
    ) -> None: ...

    def prove_package(self, reference: Reference) -> TlogProof: ...

    def event_payload(self, sequence: int) -> bytes: ...

    def attestation_envelopes(self, reference: Reference) -> list[bytes]: ...


@dataclass(frozen=True)
class BundleReport:
    """What a verified bundle proves."""

    package: str
    package_id: str
    files: int
    size: int
    checkpoint: Checkpoint
    event_sequence: int
    signed_by: tuple[str, ...]
    statement: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        build = self.statement.get("predicate", {}).get("buildDefinition", {})
        inputs = build.get("resolvedDependencies", [])
        run = self.statement.get("predicate", {}).get("runDetails", {})
        return {
            "ok": True,
            "package": self.package,
            "package_id": self.package_id,
            "files": self.files,
            "size": self.size,
            "signed_by": list(self.signed_by),
            "log": {"origin": self.checkpoint.origin, "size": self.checkpoint.size,
                    "event": self.event_sequence},
            "build_type": build.get("buildType"),
            "run_id": run.get("metadata", {}).get("invocationId"),
            "inputs": [_dependency(d) for d in inputs],
        }  # fmt: skip


def _dependency(descriptor: Mapping[str, Any]) -> str:
    """How a report names a resolved dependency: an input package by name, code by commit."""
    commit = descriptor.get("digest", {}).get("gitCommit")
    return (
        f"git commit {commit}" if commit else str(descriptor.get("name") or descriptor.get("uri"))
    )


# ---------------------------------------------------------------------------- export
def export_bundle(
    store: BundleSource,
    reference: Reference,
    target: Path,
    *,
    signer: Signer | None = None,
    statement: bytes | None = None,
    log_verifier_key: str | None = None,
    actor: str | None = None,
) -> Path:
    """Write the bundle of a package to ``target`` (a new directory, or a ``.tar`` file):
    whole or not at all. ``signer`` signs ``statement`` (the package's provenance
    statement) into the bundle beside the package's stored attestations; the export is
    recorded as a retrieval by ``actor``."""
    package = store.describe(reference)
    envelopes = list(store.attestation_envelopes(package))
    keys: dict[str, bytes] = {}
    if signer is not None:
        if statement is None:
            raise InvalidInputError("signing at export needs the statement to sign")
        envelopes.append(sign_envelope(statement, signer))
        if isinstance(signer.public_key, SSlibKey):
            pem = public_pem(signer.public_key).encode()
            keys[f"keys/{signer.public_key.keyid}.pub"] = pem
    if not envelopes:
        raise EvidenceError(
            f"package {package.reference} has no attestation: attest it first or sign at export"
        )
    proof = store.prove_package(package)
    sequence = int(split_chain_input(proof.extra or b"")["sequence"])
    if log_verifier_key:
        keys["keys/log.vkey"] = log_verifier_key.encode() + b"\n"
    document = manifest_document(package.kind, package.files, package.metadata, package.provenance)
    parts: dict[str, bytes] = {
        INDEX: canonical_json({"format": FORMAT, "package": package.reference,
                               "package_id": str(package.id)}) + b"\n",
        MANIFEST: canonical_json(document),
        ENVELOPES: b"".join(e.rstrip(b"\n") + b"\n" for e in envelopes),
        EVENT: store.event_payload(sequence),
        PROOF: proof.to_text().encode(),
        **keys,
    }  # fmt: skip

    def copy(path: str, fd: int, offset: int) -> None:
        store.copy_file(package, path, fd, offset)

    files = [(entry.path, entry.blob.size) for entry in package.files]
    if target.suffix == ".tar":
        _write_tar(target, parts, files, copy)
    else:
        _write_directory(target, parts, files, copy)
    store.record_retrieval(package, actor=actor, purpose="evidence export")
    return target


Copy = Callable[[str, int, int], None]
"""Writes a package file's verified bytes into an open file descriptor at an offset."""


def _write_directory(
    target: Path, parts: Mapping[str, bytes], files: Sequence[tuple[str, int]], copy: Copy
) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError(f"{str(target)!r} exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in parts.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        for path, _ in files:
            destination = staging / FILES / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(destination, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                copy(path, fd, 0)
            finally:
                os.close(fd)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_tar(
    target: Path, parts: Mapping[str, bytes], files: Sequence[tuple[str, int]], copy: Copy
) -> None:
    """A POSIX tar archive written member by member: each file's bytes are copied
    straight to their place after its header."""
    if target.exists():
        raise InvalidInputError(f"{str(target)!r} exists: a bundle is never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        offset = 0

        def append(data: bytes) -> None:
            nonlocal offset
            offset += os.pwrite(handle, data, offset)

        for name, data in parts.items():
            append(_header(name, len(data)) + data + _padding(len(data)))
        for path, size in files:
            append(_header(FILES + path, size))
            copy(path, handle, offset)
            offset += size
            append(_padding(size))
        end = offset + 2 * tarfile.BLOCKSIZE
        append(bytes(2 * tarfile.BLOCKSIZE + (-end) % tarfile.RECORDSIZE))
        os.close(handle)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(handle)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return bytes(-size % tarfile.BLOCKSIZE)


# ---------------------------------------------------------------------------- reading
class _Bundle(Protocol):
    def names(self) -> set[str]: ...

    def open(self, name: str) -> IO[bytes]: ...


class _Directory:
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if not p.is_dir()}

    def open(self, name: str) -> IO[bytes]:
        return open(self.root / name, "rb")


class _Tar:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members = {m.name: m for m in tar.getmembers() if m.isfile()}

    def names(self) -> set[str]:
        return set(self.members)

    def open(self, name: str) -> IO[bytes]:
        stream = self.tar.extractfile(self.members[name])
        assert stream is not None
        return stream


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[_Bundle]:
    if path.is_dir():
        yield _Directory(path)
        return
    try:
        with tarfile.open(path, mode="r:*") as tar:
            yield _Tar(tar)
    except (tarfile.TarError, EOFError) as exc:
        raise EvidenceError(f"bundle {str(path)!r} is not a readable tar archive: {exc}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read bundle {str(path)!r}: {exc}") from None


def _read(bundle: _Bundle, names: set[str], name: str) -> bytes:
    if name not in names:
        raise EvidenceError(f"the bundle has no {name}: it is truncated or not a bundle")
    with bundle.open(name) as stream:
        data = stream.read(MAX_PART + 1)
    if len(data) > MAX_PART:
        raise EvidenceError(f"the bundle's {name} is larger than {MAX_PART >> 20} MiB")
    return data


# ---------------------------------------------------------------------------- verify
def verify_bundle(
    path: Path, *, keys: Sequence[SSlibKey], log_verifier: NoteVerifier
) -> BundleReport:
    """Check the bundle at ``path`` offline (see the module docstring); ``EvidenceError``,
    ``CheckpointError`` or ``IntegrityError`` names the first part that fails."""
    if not keys:
        raise InvalidInputError("give at least one public key the statement must be signed by")
    with _opened(path) as bundle:
        names = bundle.names()
        checkpoint, sequence, event = _verify_registration(bundle, names, log_verifier)
        document = _verify_manifest(bundle, names, event)
        entries = {f["path"]: f for f in document["files"]}
        _verify_files(bundle, names, entries)
        statement, signed_by = _verify_statements(bundle, names, keys, event, entries)
    return BundleReport(
        package=f"{event['name']}@{event['version']}",
        package_id=str(event["package_id"]),
        files=len(entries),
        size=sum(f["size"] for f in entries.values()),
        checkpoint=checkpoint,
        event_sequence=sequence,
        signed_by=signed_by,
        statement=statement,
    )


def _verify_registration(
    bundle: _Bundle, names: set[str], verifier: NoteVerifier
) -> tuple[Checkpoint, int, dict[str, Any]]:
    """The checkpoint, sequence and payload of the registration the proof proves."""
    try:
        proof = TlogProof.parse(_read(bundle, names, PROOF).decode())
    except UnicodeDecodeError:
        raise CheckpointError(f"the bundle's {PROOF} is not text") from None
    checkpoint = proof.verify(verifier)
    try:
        fields = split_chain_input(proof.extra or b"")
    except ValueError as exc:
        raise CheckpointError(f"the proof's leaf is not an event's chain input: {exc}") from None
    if fields["event_type"] != "PackageRegistered":
        raise EvidenceError(f"the proven event is a {fields['event_type']}, not a registration")
    payload = _read(bundle, names, EVENT)
    if codec.payload_digest(payload) != fields["payload_digest"]:
        raise EvidenceError(f"the bundle's {EVENT} is not the payload of the proven event")
    event = codec.decode(payload)
    if str(event.get("package_id")) != fields["subject_id"]:
        raise EvidenceError(f"the bundle's {EVENT} registers another package than the event")
    return checkpoint, int(fields["sequence"]), event


def _verify_manifest(bundle: _Bundle, names: set[str], event: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest, once its digest is the one the log registered."""
    try:
        document = json.loads(_read(bundle, names, MANIFEST))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceError(f"the bundle's {MANIFEST} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise EvidenceError(f"the bundle's {MANIFEST} is not a package manifest")
    digest = package_digest(document)
    if (digest.content_address, digest.sha256.hex) != (
        event.get("content_address"),
        event.get("digest_sha256"),
    ):
        raise EvidenceError(
            f"the bundle's {MANIFEST} is not the manifest of {event.get('name')}@"
            f"{event.get('version')}: its digest is {digest.content_address}, the log "
            f"registered {event.get('content_address')}"
        )
    return document


def _verify_files(bundle: _Bundle, names: set[str], entries: Mapping[str, Any]) -> None:
    present = {n[len(FILES) :] for n in names if n.startswith(FILES)}
    for path in sorted(present - entries.keys()):
        raise EvidenceError(f"the bundle holds {FILES}{path}, which the manifest does not list")
    for path, entry in sorted(entries.items()):
        if path not in present or PurePosixPath(path).is_absolute():
            raise EvidenceError(f"the bundle has no {FILES}{path}: it is truncated")
        sha256, size = hashlib.sha256(), 0
        with bundle.open(FILES + path) as stream:
            while chunk := stream.read(CHUNK):
                sha256.update(chunk)
                size += len(chunk)
        if size != entry["size"] or sha256.hexdigest() != entry["digest_sha256"]:
            raise IntegrityError(
                f"{FILES}{path} is not the registered file: {size} bytes, sha256 "
                f"{sha256.hexdigest()} (registered: {entry['size']} bytes, sha256 "
                f"{entry['digest_sha256']})"
            )


def _verify_statements(
    bundle: _Bundle,
    names: set[str],
    keys: Sequence[SSlibKey],
    event: Mapping[str, Any],
    entries: Mapping[str, Any],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The first statement signed by one of ``keys`` that names this package and its
    files, and the ids of the keys that signed it."""
    lines = [line for line in _read(bundle, names, ENVELOPES).split(b"\n") if line.strip()]
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            verified = verify_envelope(line, keys)
        except EvidenceError as exc:
            problems.append(f"envelope {number}: {exc}")
            continue
        statement = parse_statement(verified.payload)
        subjects = statement_subjects(statement)
        package = subjects.package
        if (package.sha256, package.package_id) != (event["digest_sha256"], event["package_id"]):
            raise EvidenceError(
                f"envelope {number} is a statement about package {package.name} "
                f"({package.package_id}), not {event['name']}@{event['version']} "
                f"({event['package_id']})"
            )
        named = {path: subject.sha256 for path, subject in subjects.files.items()}
        if named != {path: entry["digest_sha256"] for path, entry in entries.items()}:
            raise EvidenceError(
                f"envelope {number}'s statement names other files than the manifest"
            )
        return statement, verified.key_ids
    detail = "; ".join(problems) if problems else "the bundle holds no envelope"
    raise EvidenceError(f"no statement in the bundle is signed by the given key(s): {detail}")

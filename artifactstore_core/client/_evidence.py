"""Evidence from a server: its answers parsed back into the core's types, and evidence
bundles downloaded (a ``.tar`` file, or a directory extracted from it) all or nothing."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from artifactstore_core.client._transport import Transport
from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import Checkpoint, NoteVerifier, SignedCheckpoint
from artifactstore_core.errors import (
    BackendUnavailableError,
    EvidenceError,
    IntegrityError,
    InvalidInputError,
)
from artifactstore_core.transparency import Consistency

CHUNK = 1 << 20


def signed_checkpoint(data: Mapping[str, Any]) -> SignedCheckpoint:
    """A checkpoint as the server's JSON gives it, its state read from the note itself."""
    note = str(data["note"])
    checkpoint = Checkpoint.parse(note.rpartition("\n\n")[0] + "\n")
    return SignedCheckpoint(checkpoint, note, dt.datetime.fromisoformat(data["issued_at"]))


def verifier_key(verifier: NoteVerifier) -> str:
    """The verifier key text ``<name>+<hex key id>+<base64(0x01 ‖ key)>`` of ``verifier``."""
    encoded = base64.b64encode(b"\x01" + verifier.public_key).decode()
    return f"{verifier.name}+{verifier.key_id.hex()}+{encoded}"


def consistency(data: Mapping[str, Any], old: Checkpoint | None) -> Consistency:
    """A consistency answer; with ``old`` (a checkpoint the caller verified) the proof
    is checked here against it, so a server cannot pass off a forked log."""
    new = signed_checkpoint(data["new"])
    proof = tuple(base64.b64decode(node, validate=True) for node in data["proof"])
    if old is None:
        return Consistency(
            Checkpoint(new.checkpoint.origin, int(data["old_size"]), b""), new, proof
        )
    if old.size and not merkle.verify_consistency(
        old.size, new.checkpoint.size, old.root, new.checkpoint.root, list(proof)
    ):
        raise IntegrityError(
            f"the server's checkpoint of size {new.checkpoint.size} is not consistent with the "
            f"one of size {old.size}: the log was forked or rewritten"
        )
    return Consistency(old, new, proof)


def download_bundle(transport: Transport, path: str, target: Path) -> Path:
    """Download the tar at ``path`` to ``target``: a new ``.tar`` file, or a new (or empty)
    directory it is safely extracted into. Nothing is left behind on failure."""
    if target.suffix == ".tar":
        if target.exists():
            raise InvalidInputError(f"{str(target)!r} exists: a bundle is never overwritten")
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError(f"{str(target)!r} exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tar", dir=target.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            _receive(transport, path, file)
        if target.suffix == ".tar":
            try:
                os.link(temporary, target)  # create-only, whole
            except FileExistsError:
                raise InvalidInputError(
                    f"{str(target)!r} exists: a bundle is never overwritten"
                ) from None
        else:
            extract(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _receive(transport: Transport, path: str, file: Any) -> None:
    response = transport.stream("GET", path)
    try:
        expected = int(response.headers.get("Content-Length", -1))
        received = 0
        for chunk in response.iter_bytes(CHUNK):
            file.write(chunk)
            received += len(chunk)
    except transport.httpx.TransportError as exc:
        raise transport.unavailable("GET", path, exc) from exc
    finally:
        response.close()
    if expected >= 0 and received != expected:
        raise BackendUnavailableError(
            f"the evidence bundle from {transport.base_url}{path} was cut: {received} of "
            f"{expected} bytes"
        )
    file.flush()
    os.fsync(file.fileno())


def extract(archive: Path, target: Path) -> None:
    """Extract ``archive`` into a staging directory beside ``target``, then rename it
    into place; members other than regular files and directories, or reaching outside,
    are refused (``EvidenceError``)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            with tarfile.open(archive) as bundle:
                for member in bundle:
                    if not (member.isfile() or member.isdir()):
                        raise EvidenceError(
                            f"the bundle's member {member.name[:200]!r} is not a regular file"
                        )
                    bundle.extract(member, staging, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise EvidenceError(f"the evidence bundle cannot be extracted: {exc}") from exc
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise

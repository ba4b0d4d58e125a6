"""``RemoteArtifactStore``: the registry's verbs over the HTTP API (``artifactstore serve``).

The methods have the names, arguments and return types of ``ArtifactStore``'s; the
server's JSON is parsed back into the core's types and its problem documents into the
core's errors, so code written against one works against the other. The differences:
the actor is the token's (``actor=`` arguments are ignored), a ``plan`` handed to
``sweep`` is planned again by the server at its ``now``, ``verify`` asks per package, and
``uri_of`` names the file's URL on the server (docs/http.md lists them all).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast
from urllib.parse import quote

from artifactstore_core.client import _evidence
from artifactstore_core.client._tokens import RemoteTokens
from artifactstore_core.client._transport import RetryPolicy, Transport
from artifactstore_core.client._uploads import CHUNK_SIZE, SINGLE_PUT_BYTES, Uploads
from artifactstore_core.domain.checkpoint import Checkpoint, NoteVerifier, SignedCheckpoint
from artifactstore_core.domain.events import EVENT_TYPES, TokenIssued
from artifactstore_core.domain.manifest import FileEntry, Provenance
from artifactstore_core.domain.names import validate_file_paths, validate_kind, validate_name
from artifactstore_core.domain.package import Hold, Package, check_readable, iso
from artifactstore_core.domain.references import PackageRef, Reference
from artifactstore_core.domain.retention import KeepRule
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import (
    BlobUnknownError,
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PackageExpiredError,
)
from artifactstore_core.eventlog.log import RecordedEvent
from artifactstore_core.export import export_files
from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    VerifyingReader,
    hash_bytes,
    hash_copy,
    matches,
)
from artifactstore_core.ingest import PutRequest, naming_request, parse_expected
from artifactstore_core.integrity import BlobProblem, VerifyResult
from artifactstore_core.queries import LineageEdge, PackageFilter
from artifactstore_core.retention.explain import Explanation
from artifactstore_core.retention.sweep import SweepPlan, SweepResult
from artifactstore_core.sources import Files, FileSource, collect
from artifactstore_core.transparency import Consistency

if TYPE_CHECKING:
    import httpx

PACKAGES = "/v1/packages"
KEEP_RULES = "/v1/retention/keep-rules"
PAGE = 1000  # items per page of a listing (the server's maximum)
INLINE_BYTES = 4 * 1024 * 1024  # small packages' bytes per registration (JSON: 16 MiB)
_JSON = {"Accept": "application/json"}
LONG_READ = 3600.0  # seconds a verification or a sweep may take on the server


def _segment(text: str) -> str:
    """``text`` as one URL path segment (names hold ``/``; references ``@`` and ``:``)."""
    return quote(text, safe="")


def _ref_text(reference: Reference) -> str:
    """The text of a reference (a ``Package`` by its id)."""
    if isinstance(reference, Package):
        return str(reference.id)
    return reference.text if isinstance(reference, PackageRef) else str(reference)


def _ref(reference: Reference) -> str:
    """The URL path segment of a reference."""
    return _segment(_ref_text(reference))


class RemoteArtifactStore:
    """The registry at ``url`` (an ``artifactstore serve``), authenticated by ``token``.

    Bytes up to ``single_put_bytes`` are uploaded in one request, larger ones in resumable
    chunks of ``chunk_size`` (or the server's minimum), ``upload_threads`` files at a time;
    reads are verified while streamed.
    Requests are retried per ``retry`` (idempotent ones on any transient failure).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        chunk_size: int = CHUNK_SIZE,
        single_put_bytes: int = SINGLE_PUT_BYTES,
        upload_threads: int = 4,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if upload_threads < 1:
            raise InvalidInputError(f"upload_threads must be at least 1, got {upload_threads}")
        self.upload_threads = upload_threads
        self.transport = Transport(
            url, token, retry=retry, timeout=timeout, client=client, sleep=sleep
        )
        self.uploads = Uploads(
            self.transport, chunk_size=chunk_size, single_put_bytes=single_put_bytes
        )

    @property
    def url(self) -> str:
        return self.transport.base_url

    def close(self) -> None:
        """Close the connections."""
        self.transport.close()

    def __enter__(self) -> RemoteArtifactStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteArtifactStore({self.url!r})"

    # ------------------------------------------------------------------ plumbing
    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.transport.request(method, path, **kwargs).json()

    def _package(self, method: str, path: str, **kwargs: Any) -> Package:
        return Package.from_dict(self._json(method, path, **kwargs))

    @property
    def tokens(self) -> RemoteTokens:
        """Access tokens on the server (``store.tokens``' verbs, for the token's actor)."""
        return RemoteTokens(self.transport)

    @property
    def actor(self) -> str:
        """The actor the server records for this client: its token's."""
        return str(self.whoami()["actor"])

    def whoami(self) -> dict[str, Any]:
        """The token's principal as the server sees it (actor, scopes, expiry)."""
        result: dict[str, Any] = self._json("GET", "/v1/whoami")
        return result

    # ------------------------------------------------------------------ blobs
    def stat(self, digest: str) -> BlobHash:
        """The stored blob with ``digest`` (``blake3:`` or ``sha256:``); else
        ``BlobUnknownError``."""
        return self.uploads.stat(Digest.parse(digest))

    def upload(
        self,
        stream: BinaryIO,
        *,
        upload_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> BlobHash:
        """Store the bytes of ``stream`` as a blob (resuming session ``upload_id`` if given)."""
        return self.uploads.upload(stream, upload_id=upload_id, progress=progress)

    def open_upload(self) -> str:
        """Open an upload session for ``upload(..., upload_id=)``; returns its id."""
        return self.uploads.open()

    # ------------------------------------------------------------------ writing
    def put(
        self,
        name: str,
        files: Files,
        *,
        kind: str = "output",
        metadata: Mapping[str, Any] | None = None,
        retention_class: str | None = None,
        inputs: Sequence[Reference] = (),
        provenance: Provenance | Mapping[str, Any] | None = None,
        expected: Mapping[str, str | Digest | BlobHash] | None = None,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
        idempotency_key: str | None = None,
    ) -> Package:
        """Upload files and register them as a new version of package ``name``.

        The registration carries ``idempotency_key`` (a new one if not given), so that a
        retried request never registers a second version.
        """
        request = PutRequest(
            name, files, kind, metadata, retention_class, inputs, provenance, expected
        )
        return self._put([request], [idempotency_key], progress)[0]

    def put_many(
        self,
        requests: Iterable[PutRequest],
        *,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Package]:
        """Upload the files of many packages, then register them all or none."""
        requests = list(requests)
        return self._put(requests, [None] * len(requests), progress)

    def _put(
        self,
        requests: Sequence[PutRequest],
        keys: Sequence[str | None],
        progress: Callable[[int], None] | None,
    ) -> list[Package]:
        # What can be checked without the server is checked before any byte is sent.
        prepared = []
        for index, request in enumerate(requests):
            with naming_request(index, request.name, len(requests)):
                validate_name(request.name)
                validate_kind(request.kind)
                sources = collect(request.files)
                validate_file_paths(source.path for source in sources)
                expected = parse_expected(request.expected or {}, {s.path for s in sources})
            prepared.append((request, sources, expected))
        report = _locked(progress)
        budget = INLINE_BYTES  # small packages travel inside the registration
        with ThreadPoolExecutor(self.upload_threads, thread_name_prefix="upload") as pool:
            pending: list[list[Future[BlobHash]] | dict[str, _Inline]] = []
            for _request, sources, expected in prepared:
                sizes = [source.size_hint for source in sources]
                total = sum(size or 0 for size in sizes)
                if None not in sizes and total <= budget:
                    budget -= total
                    pending.append(
                        {s.path: _inline(s, expected.get(s.path), report) for s in sources}
                    )
                else:
                    pending.append(
                        [pool.submit(self._upload_source, s, expected.get(s.path), report)
                         for s in sources]
                    )  # fmt: skip
            bodies = []
            try:
                for index, ((request, sources, _), files) in enumerate(
                    zip(prepared, pending, strict=True)
                ):
                    where = f"request {index}" if len(requests) > 1 else f"package {request.name!r}"
                    given: Mapping[str, BlobHash | _Inline] = (
                        {s.path: f.result() for s, f in zip(sources, files, strict=True)}
                        if isinstance(files, list)
                        else files
                    )
                    bodies.append(self._registration(request, given, where))
            except BaseException:
                pool.shutdown(cancel_futures=True)  # the first failure stops the rest
                raise
        if len(bodies) == 1:
            return [self._register(bodies[0], keys[0])]
        # The server scopes a key to a name: a batch naming one package twice cannot
        # carry one, and is then not retried once it may have reached the server.
        names = [body["name"] for body in bodies]
        unique = len(set(names)) == len(names)
        answer = self._json(
            "POST",
            f"{PACKAGES}:batch",
            json={"packages": bodies},
            headers={"Idempotency-Key": str(uuid.uuid4())} if unique else None,
        )
        items = answer["items"] if isinstance(answer, dict) else answer
        return [Package.from_dict(item) for item in items]

    def _upload_source(
        self,
        source: FileSource,
        expected: Digest | BlobHash | None,
        progress: Callable[[int], None] | None,
    ) -> BlobHash:
        def check(blob: BlobHash) -> None:
            _check_expected(source.path, blob, expected)

        if source.size_hint is not None and source.size_hint > self.uploads.single_put_bytes:
            # A large re-readable file: hashing it locally is far cheaper than sending it,
            # and a blob the server holds already is not sent again.
            with source.open() as stream:
                blob = hash_copy(stream)
            check(blob)
            try:
                if self.uploads.stat(blob.blake3).size == blob.size:
                    if progress:
                        progress(blob.size)
                    return blob
            except BlobUnknownError:
                pass
        with source.open() as stream:
            return self.uploads.upload(stream, expected=check, progress=progress)

    @staticmethod
    def _registration(
        request: PutRequest, files: Mapping[str, str | BlobHash | _Inline], where: str
    ) -> dict[str, Any]:
        if isinstance(request.inputs, str | bytes):
            raise InvalidInputError(
                f"{where}: inputs must be a list of package references, got {request.inputs!r:.60}"
            )
        provenance = request.provenance
        return {
            "name": request.name,
            "kind": request.kind,
            "files": {path: _file_json(blob) for path, blob in files.items()},
            "metadata": dict(request.metadata) if request.metadata is not None else None,
            "retention_class": request.retention_class,
            "inputs": [_ref_text(item) for item in request.inputs],
            "provenance": (
                provenance.to_dict()
                if isinstance(provenance, Provenance)
                else dict(provenance)
                if provenance is not None
                else None
            ),
        }

    def register(
        self,
        name: str,
        files: Mapping[str, str | BlobHash],
        *,
        kind: str = "output",
        metadata: Mapping[str, Any] | None = None,
        retention_class: str | None = None,
        inputs: Sequence[Reference] = (),
        provenance: Provenance | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Register blobs already stored (``upload``) as a new version of ``name``;
        ``BlobUnknownError`` lists the missing ones."""
        request = PutRequest(name, {}, kind, metadata, retention_class, inputs, provenance)
        return self._register(
            self._registration(request, files, f"package {name!r}"), idempotency_key
        )

    def _register(self, body: Mapping[str, Any], key: str | None) -> Package:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        return self._package("POST", PACKAGES, json=body, headers=headers)

    def tag(
        self,
        reference: Reference,
        tag: str,
        *,
        current: str | Literal[False] | None = False,
        actor: str | None = None,
    ) -> Package:
        """Point ``tag`` of the package's name at this package; ``current`` makes the move
        conditional as in ``ArtifactStore.tag`` (``If-None-Match: *`` / ``If-Match``)."""
        package = reference if isinstance(reference, Package) else self.describe(reference)
        headers = (
            None if current is False
            else {"If-None-Match": "*"} if current is None
            else {"If-Match": f'"{current}"'}
        )  # fmt: skip
        return self._package(
            "PUT",
            f"{PACKAGES}/{_segment(package.name)}/tags/{_segment(tag)}",
            json={"version": package.version},
            headers=headers,
        )

    def untag(
        self, name: str, tag: str, *, current: str | None = None, actor: str | None = None
    ) -> Package:
        """Remove ``tag`` of package ``name``; returns the package it pointed at
        (``current``, a package digest, makes it conditional: ``If-Match``)."""
        return self._package(
            "DELETE",
            f"{PACKAGES}/{_segment(name)}/tags/{_segment(tag)}",
            headers={"If-Match": f'"{current}"'} if current is not None else None,
        )

    def register_schema(
        self, kind: str, schema: Mapping[str, Any], *, actor: str | None = None
    ) -> None:
        """Require metadata of ``kind`` to satisfy the JSON Schema ``schema`` from now on."""
        self.transport.request("PUT", f"/v1/schemas/{_segment(kind)}", json=dict(schema))

    # ------------------------------------------------------------------ reading
    def describe(self, reference: Reference) -> Package:
        """The package a reference selects, without recording a retrieval."""
        return self._package("GET", f"{PACKAGES}/{_ref(reference)}")

    def get(
        self,
        reference: Reference,
        *,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> Package:
        """The package a reference selects, recording a retrieval unless ``record=False``
        (``PackageExpiredError`` for an expired one)."""
        package = self.describe(reference)
        check_readable(package)
        if record:
            self.record_retrieval(package, purpose=purpose, run_id=run_id)
        return package

    def record_retrieval(
        self,
        package: Package,
        *,
        path: str | None = None,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Record that ``package`` (or one file) was read.

        A server without ``POST /v1/packages/{ref}/retrievals`` records it through a
        one-byte read of the file (of the first file for the whole package).
        """
        body = {"path": path, "purpose": purpose, "run_id": run_id}
        try:
            self.transport.request(
                "POST", f"{PACKAGES}/{package.id}/retrievals", json=body, idempotent=False
            )
        except NotFoundError as missing:
            if getattr(missing, "code", None) != "NOT_FOUND" or not package.files:
                raise
            entry = package.file(path) if path is not None else package.files[0]
            params = {k: v for k, v in body.items() if k != "path" and v is not None}
            self.transport.request(
                "GET",
                f"{PACKAGES}/{package.id}/files/{quote(entry.path)}",
                params=params,
                headers={"Range": "bytes=0-0"} if entry.blob.size else None,
            )

    def open_file(
        self,
        reference: Reference,
        path: str | None = None,
        *,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> BinaryIO:
        """A stream of one file's bytes, verified as it is read (``IntegrityError``)."""
        package = reference if isinstance(reference, Package) else self.describe(reference)
        check_readable(package)
        entry = package.file(path)
        return self._open_entry(package, entry, record=record, purpose=purpose, run_id=run_id)

    def _open_entry(
        self,
        package: Package,
        entry: FileEntry,
        *,
        record: bool,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> BinaryIO:
        if record:  # the server records a retrieval of the file as it serves it
            params = {k: v for k, v in (("purpose", purpose), ("run_id", run_id)) if v}
            path = f"{PACKAGES}/{package.id}/files/{quote(entry.path)}"
        else:  # the same bytes by their address: nothing recorded
            params, path = {}, f"/v1/blobs/{entry.blob.content_address}"
        response = self.transport.stream("GET", path, params=params)
        owner = f"package {package.reference}, file {entry.path!r}"
        verifying = VerifyingReader(
            cast(
                BinaryIO,
                _ResponseReader(response, self.transport, owner, entry.blob.content_address),
            ),
            entry.blob,
            lambda exc: IntegrityError(f"{owner} read from {self.url}: {exc}"),
        )
        return io.BufferedReader(verifying, CHUNK_SIZE)

    def uri_of(self, reference: Reference, path: str | None = None) -> str:
        """The URL of file ``path`` (or of the only file), else of the package."""
        package = reference if isinstance(reference, Package) else self.describe(reference)
        base = f"{self.url}{PACKAGES}/{package.id}"
        if path is None and len(package.files) != 1:
            return base
        return f"{base}/files/{quote(package.file(path).path)}"

    def read_bytes(self, reference: Reference, path: str | None = None, **kwargs: Any) -> bytes:
        """All bytes of one file, verified."""
        with self.open_file(reference, path, **kwargs) as stream:
            return stream.read()

    def export(
        self,
        reference: Reference,
        destination: str | Path,
        *,
        force: bool = False,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Package:
        """Write every file of a package under ``destination``, verified, all or nothing
        (as ``ArtifactStore.export``)."""
        package = reference if isinstance(reference, Package) else self.describe(reference)
        check_readable(package)
        export_files(
            package.files,
            destination,
            lambda entry: self._open_entry(package, entry, record=False),
            package=package.reference,
            force=force,
            progress=progress,
        )
        if record:
            self.record_retrieval(package, purpose=purpose, run_id=run_id)
        return package

    def list_packages(self, where: PackageFilter | None = None, **filters: Any) -> list[Package]:
        """Packages matching the filters (see ``PackageFilter``), by name and version."""
        where = where or PackageFilter(**filters)
        if where.name_prefix and where.name and not where.name.startswith(where.name_prefix):
            return []
        params: dict[str, Any] = {
            key: value
            for key, value in {
                "prefix": where.name or where.name_prefix,
                "kind": where.kind,
                "tag": where.tag,
                "retention_class": where.retention_class,
                "status": where.status,
                "name": where.name,
                "run_id": where.run_id,
                "created_after": iso(where.created_after),
                "created_before": iso(where.created_before),
            }.items()
            if value
        }
        # The filters a server may not apply are (also) applied here; the limit after them.
        found = (Package.from_dict(item) for item in self._pages(PACKAGES, params, None))
        selected = (p for p in found if _selects(where, p))
        return list(itertools.islice(selected, where.limit))

    def _pages(
        self, path: str, params: dict[str, Any], limit: int | None, *, cursor_param: str = "after"
    ) -> Iterator[dict[str, Any]]:
        """Items of a paginated listing, following ``next`` until ``limit`` items."""
        count, cursor = 0, None
        while True:
            page = dict(params)
            page["limit"] = PAGE if limit is None else min(limit - count, PAGE)
            if cursor is not None:
                page[cursor_param] = cursor
            answer = self._json("GET", path, params=page)
            for item in answer["items"]:
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            cursor = answer.get("next")
            if not cursor:
                return

    def lineage(
        self, reference: Reference, *, downstream: bool = False, depth: int | None = None
    ) -> list[tuple[LineageEdge, Package]]:
        """Upstream inputs (or downstream consumers) of a package, with the related package."""
        if depth is not None and depth < 1:
            raise InvalidInputError(f"lineage depth must be at least 1, got {depth}")
        params: dict[str, Any] = {"direction": "down" if downstream else "up"}
        if depth is not None:
            params["depth"] = depth
        answer = self._json("GET", f"{PACKAGES}/{_ref(reference)}/lineage", params=params)
        return [
            (
                LineageEdge(
                    edge["depth"], uuid.UUID(edge["package_id"]), uuid.UUID(edge["input_id"])
                ),
                Package.from_dict(edge["related"]),
            )
            for edge in answer["items"]
        ]

    def schemas(self) -> dict[str, dict[str, Any]]:
        """The registered metadata schemas by kind."""
        answer = self._json("GET", "/v1/schemas")
        return {kind: dict(schema) for kind, schema in answer["schemas"].items()}

    # ------------------------------------------------------------------ retention
    def set_retention(
        self,
        reference: Reference,
        *,
        retention_class: str | None = None,
        expires_at: dt.datetime | None = None,
        never_expires: bool = False,
        override: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Change a package's class and/or expiry (rules as ``ArtifactStore.set_retention``)."""
        return self._package(
            "PUT",
            f"{PACKAGES}/{_ref(reference)}/retention",
            json={
                "class": retention_class,
                "expires_at": iso(expires_at),
                "never_expires": never_expires,
                "override": override,
                "reason": reason,
            },
        )

    def place_hold(
        self, reference: Reference, *, reason: str, kind: str = "legal", actor: str | None = None
    ) -> Hold:
        """Place a hold: the package never expires and keeps its bytes until released."""
        answer = self._json(
            "POST", f"{PACKAGES}/{_ref(reference)}/holds", json={"reason": reason, "kind": kind}
        )
        return Hold.from_dict(answer)

    def release_hold(
        self,
        reference: Reference,
        hold_id: uuid.UUID | str,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Release one hold of a package; ``NotFoundError`` if it has no such hold."""
        params = {"reason": reason} if reason is not None else None
        return self._package(
            "DELETE",
            f"{PACKAGES}/{_ref(reference)}/holds/{_segment(str(hold_id))}",
            params=params,
        )

    def set_keep_rule(
        self,
        selector: str,
        keep_latest: int = 1,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> KeepRule:
        """Keep the newest ``keep_latest`` versions of each name ``selector`` matches
        (rules as ``ArtifactStore.set_keep_rule``)."""
        rule = KeepRule.parse(selector, keep_latest)
        answer = self._json(
            "PUT", f"{KEEP_RULES}/{rule.selector}",
            json={"keep_latest": rule.keep_latest, "reason": reason},
        )  # fmt: skip
        return KeepRule.from_dict(answer)

    def remove_keep_rule(
        self, selector: str, *, reason: str | None = None, actor: str | None = None
    ) -> None:
        """Remove keep rule ``selector`` (needs a ``reason``)."""
        params = {"reason": reason} if reason is not None else None
        path = f"{KEEP_RULES}/{KeepRule.parse(selector).selector}"
        self.transport.request("DELETE", path, params=params)

    def keep_rules(self) -> list[KeepRule]:
        """The keep rules in force, by selector."""
        return [KeepRule.from_dict(item) for item in self._json("GET", KEEP_RULES)["items"]]

    def plan_tier_moves(self, tier: str, **_: Any) -> list[Any]:
        """Not available remotely: planning tier moves reads the registry's database."""
        raise ConfigurationError(
            f"planning moves to tier {tier!r} needs the registry's database; run it (or the "
            f"Dagster retention jobs) with an embedded store, not through {self.url}"
        )

    def explain(self, reference: Reference, *, now: dt.datetime | None = None) -> Explanation:
        """Why a package is kept or when it goes: class, expiry, holds, shared blobs."""
        package = self.describe(reference)
        params = {"now": iso(now)} if now is not None else None
        answer = self._json("GET", f"{PACKAGES}/{package.id}/retention", params=params)
        explanation = Explanation.from_dict(answer, package)
        if now is not None and explanation.now != now:
            raise InvalidInputError(
                f"the server at {self.url} explains retention as of its own time only, "
                f"not as of {iso(now)}"
            )
        return explanation

    def move_tier(self, reference: Reference, tier: str, *, actor: str | None = None) -> Package:
        """Move a package's bytes to ``tier`` (``hot``, ``cold`` or ``archive``), verified."""
        return self._package("POST", f"{PACKAGES}/{_ref(reference)}/tier", json={"to": tier})

    def restore(self, reference: Reference, *, actor: str | None = None) -> Package:
        """Copy an archived package's bytes back to the hot tier so it can be read."""
        return self._package("POST", f"{PACKAGES}/{_ref(reference)}:restore", idempotent=True)

    def plan_sweep(
        self,
        now: dt.datetime | None = None,
        *,
        grace: dt.timedelta | None = None,
        limit: int | None = None,
        batch_size: int | None = None,
    ) -> SweepPlan:
        """Exactly what a sweep at ``now`` does (the server's dry run)."""
        return self._sweep(now, grace, limit, dry_run=True).plan

    def sweep(
        self,
        now: dt.datetime | None = None,
        *,
        plan: SweepPlan | None = None,
        dry_run: bool = False,
        grace: dt.timedelta | None = None,
        limit: int | None = None,
        batch_size: int | None = None,
        actor: str | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> SweepResult:
        """Expire due packages, move tiers, collect unneeded blobs (on the server, with its
        GC grace; a ``plan`` is planned again there at its ``now``)."""
        if plan is not None:
            now = plan.now
        return self._sweep(now, grace, limit, dry_run=dry_run)

    def _sweep(
        self,
        now: dt.datetime | None,
        grace: dt.timedelta | None,
        limit: int | None,
        *,
        dry_run: bool,
    ) -> SweepResult:
        if grace is not None:
            raise InvalidInputError(
                "a sweep's GC grace is the server's setting; it cannot be given remotely"
            )
        body = {"now": iso(now), "limit": limit, "dry_run": dry_run}
        answer = self._json(
            "POST", "/v1/retention/sweeps", json=body, idempotent=dry_run, read_timeout=LONG_READ
        )
        return SweepResult.from_dict(answer)

    # ------------------------------------------------------------------ integrity
    def verify(
        self,
        reference: Reference | None = None,
        *,
        where: PackageFilter | None = None,
        references: Sequence[Reference] | None = None,
        rehash: bool = True,
        repair: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyResult:
        """Check the stored bytes of one package, of those ``where`` selects, of the active
        ones among ``references`` (expired and unknown ones are listed) or of every active
        package, on the server, one package per request (``blobs`` counts a blob shared
        by two packages twice). ``repair`` is not available remotely."""
        if repair:
            raise InvalidInputError("verify --repair needs the registry's storage; not remotely")
        if reference is not None:
            selected: list[Reference] = [reference]
        elif references is not None:
            selected = list(references)
        else:
            selected = [p.id for p in self.list_packages(where or PackageFilter(status="active"))]
        totals = {"packages": 0, "blobs": 0, "bytes_verified": 0}
        problems: list[BlobProblem] = []
        checked, expired, unknown = [], [], []
        for item in selected:
            try:
                answer = self._json(
                    "POST",
                    f"{PACKAGES}/{_ref(item)}:verify",
                    json={"rehash": rehash},
                    idempotent=True,  # a check: safe to repeat
                    read_timeout=LONG_READ,
                )
            except NotFoundError:
                if reference is not None:
                    raise
                unknown.append(_ref_text(item))
                continue
            except PackageExpiredError:
                if reference is not None:
                    raise
                expired.append(_ref_text(item))
                continue
            checked.append(_ref_text(item))
            for key in totals:
                totals[key] += answer[key]
            problems.extend(_problem(p) for p in answer["problems"])
            if progress:
                progress(answer["bytes_verified"])
        return VerifyResult(
            totals["packages"], totals["blobs"], totals["bytes_verified"],
            problems=tuple(problems), references=tuple(checked),
            expired=tuple(expired), unknown=tuple(unknown) if references is not None else (),
        )  # fmt: skip

    def events(
        self,
        *,
        since: int = 0,
        subject_kind: str | None = None,
        subject_id: str | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Recorded events after ``since``, oldest first."""
        params: dict[str, Any] = {"since": since}
        if subject_kind is not None:
            params["subject"] = f"{subject_kind}:{subject_id or ''}"
        items = self._pages("/v1/events", params, limit, cursor_param="since")
        return [_recorded_event(item) for item in items]

    # ------------------------------------------------------------------ evidence
    def checkpoint(self, signer: object = None) -> SignedCheckpoint:
        """Have the server sign a checkpoint of its log with its log key (``admin``)."""
        if signer is not None:
            raise InvalidInputError("a server signs checkpoints with its own log key only")
        data = self._json("POST", "/v1/log/checkpoint", headers=_JSON, idempotent=True)
        return _evidence.signed_checkpoint(data)

    def latest_checkpoint(self, origin: str | None = None) -> SignedCheckpoint:
        """The server's latest signed checkpoint (``NotFoundError`` if it is not of ``origin``)."""
        signed = _evidence.signed_checkpoint(self._json("GET", "/v1/log/checkpoint", headers=_JSON))
        if origin is not None and signed.checkpoint.origin != origin:
            raise NotFoundError(f"no checkpoint has been issued for log {origin!r}")
        return signed

    def prove(self, sequence: int) -> TlogProof:
        """The offline proof that event ``sequence`` is in the log (``admin``)."""
        return TlogProof.parse(self._text(f"/v1/log/events/{int(sequence)}/proof"))

    def prove_package(self, reference: Reference) -> TlogProof:
        """The offline proof that the package's registration is in the log."""
        return TlogProof.parse(self._text(f"{PACKAGES}/{_ref(reference)}/proof"))

    def prove_consistency(self, old_note: str, verifier: NoteVerifier) -> Consistency:
        """Check that the signed checkpoint ``old_note`` is a prefix of the server's latest
        one: both notes are verified with ``verifier`` and the proof checked here."""
        old = Checkpoint.parse(verifier.verify(old_note))
        data = self._json(
            "POST", "/v1/log/consistency", content=old_note.encode(), idempotent=True,
            params={"vkey": _evidence.verifier_key(verifier)},
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )  # fmt: skip
        result = _evidence.consistency(data, old)
        verifier.verify(result.new.note)
        return result

    def prove_consistency_from(self, old_size: int) -> Consistency:
        """The server's proof that its log's first ``old_size`` events are a prefix of its
        latest checkpoint; check it against your own checkpoint's root."""
        data = self._json("GET", "/v1/log/consistency", params={"from": old_size})
        return _evidence.consistency(data, None)

    def statement(self, reference: Reference) -> bytes:
        """The package's in-toto provenance statement as the server makes it (canonical)."""
        return self.transport.request("GET", f"{PACKAGES}/{_ref(reference)}/statement").content

    def attestations(self, reference: Reference) -> list[Package]:
        """The attestations of a package, oldest first."""
        items = self._json("GET", f"{PACKAGES}/{_ref(reference)}/attestations")["items"]
        return [Package.from_dict(item) for item in items]

    def attestation_envelopes(self, reference: Reference) -> list[bytes]:
        """The DSSE envelopes of a package's attestations (one per line of their files)."""
        data = self.transport.request("GET", f"{PACKAGES}/{_ref(reference)}/envelopes").content
        return [line for line in data.split(b"\n") if line.strip()]

    def attest(
        self, reference: Reference, signer: object = None, *, actor: str | None = None
    ) -> Package:
        """Have the server sign the package's statement with its signing key and store it
        as an attestation (``attest``): the new attestation package."""
        if signer is not None:
            raise InvalidInputError("a server attests with its own signing key only")
        return self._package("POST", f"{PACKAGES}/{_ref(reference)}/attestations")

    def export_evidence(
        self,
        reference: Reference,
        target: str | Path,
        *,
        signer: object = None,
        actor: str | None = None,
    ) -> Path:
        """Download the offline evidence bundle of a package to ``target`` (a new ``.tar``
        file, or a new directory it is extracted into), all or nothing."""
        if signer is not None:
            raise InvalidInputError("a server signs evidence bundles with its own key only")
        path = f"{PACKAGES}/{_ref(reference)}/evidence"
        return _evidence.download_bundle(self.transport, path, Path(target))

    def _text(self, path: str) -> str:
        return self.transport.request("GET", path).text


@dataclass(frozen=True)
class _Inline:
    """A small file's bytes, sent inside the registration (stored with it, at once)."""

    data: bytes


def _inline(
    source: FileSource,
    expected: Digest | BlobHash | None,
    progress: Callable[[int], None] | None,
) -> _Inline:
    with source.open() as stream:
        data = stream.read()
    _check_expected(source.path, hash_bytes(data), expected)
    if progress:
        progress(len(data))
    return _Inline(data)


def _check_expected(path: str, blob: BlobHash, expected: Digest | BlobHash | None) -> None:
    if expected is not None and not matches(expected, blob):
        raise IntegrityError(
            f"file {path!r} hashes to {blob.content_address} ({blob.size} bytes), not to "
            f"the expected {expected}; nothing was stored"
        )


def _file_json(file: str | BlobHash | _Inline) -> dict[str, Any]:
    """A registration's entry for one file: a stored blob, or bytes inline."""
    if isinstance(file, _Inline):
        return {"content_base64": base64.b64encode(file.data).decode()}
    if isinstance(file, BlobHash):
        return {"digest": file.content_address, "size": file.size}
    return {"digest": str(file)}


def _locked(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """``progress`` called under a lock (uploads report from several threads)."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(count: int) -> None:
        with lock:
            progress(count)

    return report


def _selects(where: PackageFilter, package: Package) -> bool:
    """Whether ``package`` passes the filters a listing may not have applied on the server."""
    return (
        (not where.name or package.name == where.name)
        and (not where.run_id or package.provenance.run_id == where.run_id)
        and (not where.created_after or package.created_at >= where.created_after)
        and (not where.created_before or package.created_at < where.created_before)
    )


def _problem(data: Mapping[str, Any]) -> BlobProblem:
    return BlobProblem(
        data["content_address"], data["backend"], data["problem"], data["detail"],
        tuple(data["packages"]),
    )  # fmt: skip


#: Payload fields the API withholds (a token secret's hash), and what stands in for them.
WITHHELD = {"secret_sha256": ""}


def _recorded_event(data: Mapping[str, Any]) -> RecordedEvent:
    event_class = EVENT_TYPES[data["event_type"]]
    payload = dict(data["payload"])
    if event_class is TokenIssued:
        payload = WITHHELD | payload
    return RecordedEvent(
        sequence=data["sequence"],
        created_at=dt.datetime.fromisoformat(data["created_at"]),
        actor=data["actor"],
        event=event_class.from_payload(payload),
        payload_digest=data["payload_digest"],
        chain_digest=data["chain_digest"],
    )


class _ResponseReader(io.RawIOBase):
    """A streamed response body as a raw binary stream; closing it closes the response.

    A connection lost part-way is resumed from the blob (``GET /v1/blobs/{address}`` with
    ``Range: bytes=<position>-``), up to the transport's retry attempts; the bytes keep
    being verified by the reader above this one.
    """

    def __init__(
        self, response: httpx.Response, transport: Transport, owner: str, address: str
    ) -> None:
        super().__init__()
        self._response = response
        self._transport = transport
        self._owner = owner
        self._address = address
        self._chunks = response.iter_bytes(1024 * 1024)
        self._left = b""
        self._position = 0
        self._resumes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._left:
            try:
                self._left = next(self._chunks, b"")
                break
            except self._transport.httpx.TransportError as exc:
                self._resume(exc)
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        self._position += count
        return count

    def _resume(self, failure: Exception) -> None:
        self._response.close()
        self._resumes += 1
        if self._resumes >= self._transport.retry.attempts:
            raise self._transport.unavailable("GET", self._owner, failure) from failure
        self._transport.sleep(self._transport.retry.wait(self._resumes, None))
        response = self._transport.stream(
            "GET",
            f"/v1/blobs/{self._address}",
            headers={"Range": f"bytes={self._position}-"},
        )
        content_range = response.headers.get("Content-Range", "")
        if response.status_code != 206 or not content_range.startswith(f"bytes {self._position}-"):
            response.close()
            raise self._transport.unavailable("GET", self._owner, failure) from failure
        self._response = response
        self._chunks = response.iter_bytes(1024 * 1024)

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            super().close()

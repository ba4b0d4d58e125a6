"""Provenance statements of stored packages, on SQLite and PostgreSQL: validated and parsed
by the in-toto-attestation library's own classes, exact in shape for a plain put and for
a Dagster asset with inputs and a git code version, byte-identical on re-export, and read
back by ``statement_subjects``."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

from artifactstore_core.domain.manifest import canonical_json, manifest_document
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.statement import (
    DAGSTER_ASSET_BUILD,
    PACKAGE_BUILD,
    PACKAGE_MEDIA_TYPE,
    parse_statement,
    provenance_statement,
    statement_bytes,
    statement_subjects,
)
from artifactstore_core.errors import EvidenceError, InvalidInputError
from artifactstore_core.evidence.statements import statement_for
from artifactstore_core.store import ArtifactStore

pytestmark = pytest.mark.integration

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
BUILDER = "https://ci.example/builders/nightly"


def _validated(data: bytes) -> dict[str, Any]:
    """The statement, after the in-toto library validated it and parsed its predicate
    as SLSA Provenance v1 (unknown fields refused)."""
    statement = json.loads(data)
    Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
    json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    return statement


def _dagster(store: ArtifactStore, raw: Package, code_version: str) -> Package:
    """A package shaped as the Dagster IO manager records one (``default_provenance``)."""
    dagster = {
        "run_id": "run-42", "job_name": "daily", "step_key": "summary", "output_name": "result",
        "mapping_key": None, "asset_key": ["evidence", "summary"], "partition_key": "2024-05-01",
        "partition_keys_by_dimension": None, "code_version": code_version, "run_tags": {},
        "inputs": [{"input": "raw", "package_id": str(raw.id), "reference": raw.reference,
                    "asset_key": ["evidence", "raw"], "partition_key": "2024-05-01"}],
    }  # fmt: skip
    return store.put(
        "evidence/summary/2024-05-01",
        {"summary.json": b'{"ok": true}', "logs/a.txt": b"line\n"},
        kind="report",
        inputs=[raw.id],
        provenance={
            "producer": "dagster:evidence/summary",
            "run_id": "run-42",
            "code_version": code_version,
            "attributes": {"dagster": dagster, "serializer": "json"},
        },
    )


def test_a_plain_put(store: ArtifactStore) -> None:
    package = store.put(
        "reports/daily", {"summary.csv": b"a,b\n1,2\n"}, provenance={"producer": "cron"}
    )
    statement = _validated(statement_for(store, package.reference, builder_id=BUILDER))
    manifest = manifest_document(package.kind, package.files, package.metadata, package.provenance)
    manifest_sha = hashlib.sha256(canonical_json(manifest)).hexdigest()
    file = package.files[0]
    assert statement["subject"] == [
        {
            "name": "reports/daily@1",
            "digest": {"sha256": manifest_sha},
            "mediaType": PACKAGE_MEDIA_TYPE,
            "annotations": {
                "artifactstore_blake3": package.content_address.removeprefix("blake3:"),
                "artifactstore_package_id": str(package.id),
            },
        },
        {
            "name": "reports/daily@1/summary.csv",
            "digest": {"sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest()},
            "annotations": {"artifactstore_blake3": file.blob.blake3.hex, "artifactstore_size": 8},
        },
    ]
    predicate = statement["predicate"]
    assert predicate["buildDefinition"] == {
        "buildType": PACKAGE_BUILD,
        "externalParameters": {"name": "reports/daily", "kind": "output"},
        "internalParameters": {"producer": "cron"},
        "resolvedDependencies": [],
    }
    assert predicate["runDetails"]["builder"]["id"] == BUILDER
    assert set(predicate["runDetails"]["builder"]["version"]) == {"artifact-store"}
    when = package.created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert predicate["runDetails"]["metadata"] == {"finishedOn": when}  # no run id
    assert predicate["runDetails"]["byproducts"] == []


def test_a_dagster_asset_with_inputs_and_a_git_commit(store: ArtifactStore) -> None:
    raw = store.put("evidence/raw/2024-05-01", {"raw.log": b"x" * 100}, kind="log")
    package = _dagster(store, raw, GIT_SHA)
    statement = _validated(
        statement_for(store, package, builder_id=BUILDER, origin="reg.example/prod")
    )
    assert [s["name"] for s in statement["subject"]] == [
        package.reference, f"{package.reference}/logs/a.txt", f"{package.reference}/summary.json",
    ]  # fmt: skip
    assert all(list(s["digest"]) == ["sha256"] for s in statement["subject"])  # sha256 only
    predicate = statement["predicate"]
    assert predicate["buildDefinition"] == {
        "buildType": DAGSTER_ASSET_BUILD,
        "externalParameters": {
            "job": "daily", "asset_key": "evidence/summary", "partition_key": "2024-05-01",
            "kind": "report",
        },
        "internalParameters": {"producer": "dagster:evidence/summary", "dagster_run_id": "run-42"},
        "resolvedDependencies": [
            {
                "name": raw.reference,
                "uri": f"artifactstore://reg.example/prod/packages/{raw.reference}",
                "digest": {"sha256": raw.digest_sha256},
                "annotations": {
                    "artifactstore_blake3": raw.content_address.removeprefix("blake3:"),
                    "artifactstore_package_id": str(raw.id),
                },
            },
            {"name": "code", "digest": {"gitCommit": GIT_SHA}},
        ],
    }  # fmt: skip
    assert predicate["runDetails"]["metadata"]["invocationId"] == "run-42"
    parsed = json_format.ParseDict(predicate, provenance_pb2.Provenance())
    assert parsed.run_details.metadata.invocation_id == "run-42"
    assert parsed.build_definition.resolved_dependencies[1].digest["gitCommit"] == GIT_SHA


@pytest.mark.parametrize(
    ("code_version", "dependency"),
    [("ab" * 32, True), (GIT_SHA.upper(), True), ("v1.2.3", False), (GIT_SHA[:39], False)],
)
def test_only_a_git_commit_becomes_a_dependency(
    store: ArtifactStore, code_version: str, dependency: bool
) -> None:
    raw = store.put("evidence/raw/2024-05-01", {"raw.log": b"x"}, kind="log")
    statement = json.loads(
        statement_for(store, _dagster(store, raw, code_version), builder_id=BUILDER)
    )
    definition = statement["predicate"]["buildDefinition"]
    commits = [
        d["digest"] for d in definition["resolvedDependencies"] if "gitCommit" in d["digest"]
    ]
    assert commits == ([{"gitCommit": code_version.lower()}] if dependency else [])
    assert ("code_version" in definition["internalParameters"]) is not dependency


def test_re_export_is_byte_identical(store: ArtifactStore) -> None:
    raw = store.put("evidence/raw/2024-05-01", {"raw.log": b"x"}, kind="log")
    package = _dagster(store, raw, GIT_SHA)
    first = statement_for(store, package.reference, builder_id=BUILDER)
    store.tag(package.reference, "release")
    store.place_hold(package.reference, reason="audit")
    store.put("evidence/summary/2024-05-01", {"other.txt": b"later"})  # a newer version
    assert statement_for(store, f"{package.name}@1", builder_id=BUILDER) == first
    assert statement_for(store, package.id, builder_id=BUILDER) == first
    assert statement_bytes(json.loads(first)) == first  # canonical form


def test_builder_id_and_origin_default_to_the_settings(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = store.put("evidence/raw", {"raw.log": b"x"})
    package = store.put("reports/daily", {"a.txt": b"a"}, inputs=[raw.reference])

    def defaults() -> tuple[str, str]:
        predicate = json.loads(statement_for(store, package))["predicate"]
        dependency = predicate["buildDefinition"]["resolvedDependencies"][0]
        return predicate["runDetails"]["builder"]["id"], dependency["uri"]

    monkeypatch.delenv("ARTIFACTSTORE_BUILDER_ID", raising=False)
    monkeypatch.delenv("ARTIFACTSTORE_LOG_ORIGIN", raising=False)
    assert defaults() == (
        f"urn:artifactstore:builder:{store.actor}",
        "artifactstore://localhost/packages/evidence/raw@1",
    )
    monkeypatch.setenv("ARTIFACTSTORE_BUILDER_ID", "urn:example:ci")
    monkeypatch.setenv("ARTIFACTSTORE_LOG_ORIGIN", "reg.example/prod")
    assert defaults() == (
        "urn:example:ci",
        "artifactstore://reg.example/prod/packages/evidence/raw@1",
    )


def test_subjects_read_back(store: ArtifactStore) -> None:
    raw = store.put("evidence/raw/2024-05-01", {"raw.log": b"x" * 100}, kind="log")
    package = _dagster(store, raw, GIT_SHA)
    statement = parse_statement(statement_for(store, package, builder_id=BUILDER))
    subjects = statement_subjects(statement)
    assert subjects.package.name == package.reference
    assert subjects.package.sha256 == package.digest_sha256
    assert subjects.package.blake3 == package.content_address.removeprefix("blake3:")
    assert subjects.package.package_id == str(package.id)
    assert {path: (s.sha256, s.blake3, s.size) for path, s in subjects.files.items()} == {
        e.path: (e.blob.sha256.hex, e.blob.blake3.hex, e.blob.size) for e in package.files
    }


def test_an_input_the_provenance_does_not_name_is_refused(store: ArtifactStore) -> None:
    package = store.put("reports/daily", {"a.txt": b"a"})
    stranger = store.put("reports/other", {"b.txt": b"b"})
    with pytest.raises(
        InvalidInputError,
        match=f"package reports/other@1 \\({stranger.id}\\) is not an input of reports/daily@1",
    ):
        provenance_statement(package, [stranger], origin="o", builder_id=BUILDER, versions={})


def _statement_of(store: ArtifactStore) -> dict[str, Any]:
    package = store.put("reports/daily", {"a.txt": b"a", "b.txt": b"b"})
    return json.loads(statement_for(store, package, builder_id=BUILDER))


def test_malformed_statements_are_named(store: ArtifactStore) -> None:
    good = _statement_of(store)

    def altered(change: Any) -> dict[str, Any]:
        copied = copy.deepcopy(good)
        change(copied)
        return copied

    subjects: list[Any] = good["subject"]
    a_txt = subjects[1]
    cases: list[tuple[dict[str, Any], str]] = [
        (altered(lambda s: s.pop("subject")), "no subject list"),
        (altered(lambda s: s["subject"][0].pop("mediaType")), "names 0 package subjects"),
        (altered(lambda s: s["subject"].append(subjects[0])), "names 2 package subjects"),
        (altered(lambda s: s["subject"][1].pop("digest")), "subject 1 lacks a name or a sha256"),
        (altered(lambda s: s["subject"].append(a_txt)), "subject 3 'reports/daily@1/a.txt' is not"),
        (altered(lambda s: s["subject"][2].update(name="x/b.txt")), "subject 2 'x/b.txt' is not a"),
        (
            altered(lambda s: s["subject"][1]["annotations"].update(artifactstore_size="1")),
            "subject 1 'reports/daily@1/a.txt' has malformed annotations",
        ),
        (altered(lambda s: s["subject"].__setitem__(1, "x")), "subject 1 is not a JSON object"),
    ]
    for statement, message in cases:
        with pytest.raises(EvidenceError, match=message):
            statement_subjects(statement)
    with pytest.raises(EvidenceError, match="the statement is not JSON"):
        parse_statement(b"{")
    with pytest.raises(EvidenceError, match="the statement is not a JSON object"):
        parse_statement(b"[]")
    other = json.dumps({**good, "predicateType": "https://slsa.dev/provenance/v0.2"}).encode()
    with pytest.raises(
        EvidenceError, match=r"predicateType is 'https://slsa\.dev/provenance/v0\.2'"
    ):
        parse_statement(other)

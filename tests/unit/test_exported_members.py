"""The public API is exactly ``__all__``: sorted, complete and importable (httpx's habit).

A name imported into a package root is public only if it is listed, and a listed name
exists. The order is ruff's (RUF022, isort style): CONSTANTS, then Classes, then
functions, each group alphabetical.
"""

from __future__ import annotations

import types

import pytest

import artifactstore_core

pytestmark = pytest.mark.unit


def _isort_key(name: str) -> tuple[int, str]:
    group = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return group, name


def assert_curated(package: types.ModuleType) -> None:
    """``package.__all__`` is sorted, names every public object of its root (submodules
    aside), and each name imports."""
    exported = list(package.__all__)
    assert exported == sorted(exported, key=_isort_key)
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(exported) == public
    for name in exported:
        namespace: dict[str, object] = {}
        exec(f"from {package.__name__} import {name}", namespace)
        assert namespace[name] is getattr(package, name)


def test_the_core_api_is_curated() -> None:
    assert_curated(artifactstore_core)


def test_the_core_api_is_these_names() -> None:
    """Adding or removing a public name is a decision: change this list with it."""
    assert artifactstore_core.__all__ == [
        "AccessDeniedError",
        "AmbiguousReferenceError",
        "ArchivedError",
        "ArtifactStore",
        "ArtifactStoreError",
        "AuthenticationError",
        "BackendUnavailableError",
        "BlobHash",
        "BlobProblem",
        "BlobUnknownError",
        "CheckpointError",
        "ConfigurationError",
        "ConflictError",
        "Digest",
        "DigestInvalidError",
        "EventLogTamperedError",
        "EvidenceError",
        "FileEntry",
        "Hold",
        "IdempotencyConflictError",
        "IntegrityError",
        "InvalidInputError",
        "Ledger",
        "MissingBlobError",
        "MissingExtraError",
        "NotFoundError",
        "Package",
        "PackageExpiredError",
        "PackageFilter",
        "PreconditionFailedError",
        "Principal",
        "Provenance",
        "PutRequest",
        "ReadOnlyRegistryError",
        "RegisterRequest",
        "RetentionError",
        "SchemaViolationError",
        "Scope",
        "Settings",
        "SizeInvalidError",
        "SweepPlan",
        "SweepResult",
        "TierMove",
        "Tiers",
        "TokenInfo",
        "UnknownKindError",
        "UnknownRetentionClassError",
        "UploadRangeError",
        "UploadSession",
        "UploadUnknownError",
        "Uploads",
        "VerifyResult",
        "load_settings",
    ]


def test_a_name_missing_from_all_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifactstore_core, "Unlisted", object(), raising=False)
    with pytest.raises(AssertionError):
        assert_curated(artifactstore_core)

"""Validation of package names, tags, kinds and file paths inside a package."""

from __future__ import annotations

import re
from collections.abc import Iterable

from artifactstore_core.domain.limits import MAX_CLASS_NAME, check_text
from artifactstore_core.domain.manifest import check_no_path_clashes
from artifactstore_core.errors import InvalidInputError

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_KIND = re.compile(r"[a-z][a-z0-9_\-]{0,63}")
MAX_NAME = 512
MAX_PATH = 1024
BUILTIN_KINDS = frozenset({"report", "log", "snapshot", "export", "evidence", "release", "output"})
ATTESTATION_KIND = "attestation"
"""The kind of attestation packages; only the registry creates them (``store.attest``)."""
ATTESTATIONS = ".attestations"
"""The first segment of every attestation package's name: ``.attestations/<subject name>/
<subject version>``. A user's name cannot start with ``.``, so these never clash."""


def attestation_name(subject_name: str, subject_version: int) -> str:
    """The name of the attestation packages of version ``subject_version`` of ``subject_name``
    (injective: the last segment is the version, the rest the subject's name)."""
    return f"{ATTESTATIONS}/{subject_name}/{subject_version}"


def check_not_reserved(name: str, kind: str) -> None:
    """``InvalidInputError`` for a put of an attestation's name or kind: attestations are
    only made by ``store.attest`` (or at registration for configured classes)."""
    if kind == ATTESTATION_KIND or name.split("/", 1)[0] == ATTESTATIONS:
        raise InvalidInputError(
            f"package {name!r} of kind {kind!r}: kind {ATTESTATION_KIND!r} and names under "
            f"{ATTESTATIONS + '/'!r} are reserved for attestations; use `artifactstore "
            "evidence attest`"
        )


def validate_name(name: str) -> str:
    """A package name: ``/``-separated segments of letters, digits, ``_``, ``.``, ``-``."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"package name must be non-empty text, got {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidInputError(f"package name longer than {MAX_NAME} characters: {name[:40]!r}…")
    segments = name.split("/")
    if segments[0] == ATTESTATIONS and len(segments) > 1:
        segments = segments[1:]  # the registry's own names (``check_not_reserved``)
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise InvalidInputError(
                f"invalid package name {name!r}: segment {segment!r} must start with a letter, "
                "digit or '_' and contain only letters, digits, '_', '.' and '-'"
            )
    return name


def validate_tag(tag: str) -> str:
    """A tag such as ``production``: letters, digits, ``_``, ``.``, ``-`` (max 128)."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise InvalidInputError(
            f"invalid tag {tag!r}: use letters, digits, '_', '.' and '-' (at most 128)"
        )
    return tag


def validate_kind(kind: str) -> str:
    """A kind's syntax: lowercase letters, digits, ``_`` and ``-``."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidInputError(
            f"invalid kind {kind!r}: use lowercase letters, digits, '_' and '-'"
        )
    return kind


def validate_class_name(name: str) -> str:
    """A retention class name's syntax: text without NUL, at most 128 characters."""
    if name == "":
        raise InvalidInputError("retention class name must not be empty")
    return check_text(name, "retention class name", max_length=MAX_CLASS_NAME)


def validate_file_path(path: str) -> str:
    """A file path inside a package: relative POSIX, no ``..``/``.``/empty segments,
    no backslash or NUL."""
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"file path must be non-empty text, got {path!r}")
    check_text(path, f"file path {path[:60]!r}", max_length=MAX_PATH)
    if "\\" in path:
        raise InvalidInputError(f"file path {path!r} contains a backslash; use '/'")
    if path.startswith("/"):
        raise InvalidInputError(f"file path {path!r} is absolute; paths are relative")
    for segment in path.split("/"):
        if segment == "":
            raise InvalidInputError(f"file path {path!r} has an empty segment")
        if segment in (".", ".."):
            raise InvalidInputError(f"file path {path!r} contains {segment!r}")
    return path


def validate_file_paths(paths: Iterable[str]) -> list[str]:
    """Every path valid, none repeated, none also a directory of another; at least one."""
    seen: set[str] = set()
    result = []
    for path in paths:
        validate_file_path(path)
        if path in seen:
            raise InvalidInputError(f"file path {path!r} appears more than once in the package")
        seen.add(path)
        result.append(path)
    if not result:
        raise InvalidInputError("a package needs at least one file")
    check_no_path_clashes(result)
    return result

"""Package names for Dagster outputs, and the content digest used as a data version.

Assets: the asset key path (``reports/daily_summary``), plus one segment per partition
dimension for partitioned assets (``raw_logs/2024-05-01``; multi-partitions in dimension
name order, as Dagster orders them). Op outputs: ``job/op/output``, with dynamic mapping
keys as extra segments. Text that is not a valid name segment is made one and given a
short hash of the original, so two different keys never share a name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

import blake3

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_INVALID = re.compile(r"[^A-Za-z0-9_.\-]")
_MAPPED_STEP = re.compile(r"(?P<op>[^\[\]]+)\[(?P<key>.+)\]")


def segment(text: str) -> str:
    """``text`` as a valid package name segment (unchanged when it already is one)."""
    if _SEGMENT.fullmatch(text) and text not in (".", ".."):
        return text
    cleaned = _INVALID.sub("_", text)
    if not cleaned or not _SEGMENT.match(cleaned[0]):
        cleaned = "_" + cleaned
    suffix = hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()
    return f"{cleaned}-{suffix}"


def join(prefix: str, parts: Iterable[str]) -> str:
    """``prefix`` (may be empty or contain ``/``) followed by the parts as safe segments."""
    segments = [segment(p) for p in parts]
    head = [segment(p) for p in prefix.strip("/").split("/") if p] if prefix else []
    return "/".join([*head, *segments])


def partition_parts(
    partition_key: str, keys_by_dimension: Mapping[str, str] | None = None
) -> list[str]:
    """The name segments of a partition: one, or one per dimension in name order."""
    if keys_by_dimension:
        return [keys_by_dimension[d] for d in sorted(keys_by_dimension)]
    return [partition_key]


def asset_package_name(
    prefix: str,
    asset_path: Sequence[str],
    partition_key: str | None = None,
    keys_by_dimension: Mapping[str, str] | None = None,
) -> str:
    """The package name of an asset, or of one partition of it."""
    parts = list(asset_path)
    if partition_key is not None:
        parts += partition_parts(partition_key, keys_by_dimension)
    return join(prefix, parts)


def op_package_name(
    prefix: str, job_name: str, step_key: str, output_name: str, mapping_key: str | None = None
) -> str:
    """The package name of an op output: ``job/op[/step mapping key]/output[/mapping key]``."""
    mapped = _MAPPED_STEP.fullmatch(step_key)
    step_parts = [mapped["op"], mapped["key"]] if mapped else [step_key]
    parts = [job_name, *step_parts, output_name]
    if mapping_key is not None:
        parts.append(mapping_key)
    return join(prefix, parts)


def content_digest(entries: Iterable[tuple[str, str]]) -> str:
    """64 hex digits identifying a set of files by path and content address only.

    Unlike a package's content address (which covers metadata and provenance, so every
    run differs), equal bytes under equal paths always give the same digest: the right
    thing for a Dagster data version.
    """
    listing = "\n".join(f"{path}\t{address}" for path, address in sorted(entries))
    return str(blake3.blake3(listing.encode("utf-8")).hexdigest())

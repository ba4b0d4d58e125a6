"""The ``put-many`` spec: JSON Lines, one package per line, read into ``PutRequest``s;
every error names its line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from artifactstore_core.cli._input import load_json
from artifactstore_core.domain import limits
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.ingest import PutRequest

_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "paths": (list,), "kind": (str,), "retention_class": (str, type(None)),
    "metadata": (dict, type(None)), "inputs": (list,), "run_id": (str, type(None)),
    "producer": (str, type(None)), "code_version": (str, type(None)),
}  # fmt: skip
_SPEC_KEYS = set(_SPEC_TYPES)


def read_spec(spec: Any) -> list[PutRequest]:
    """The requests of a binary spec stream, one per non-blank line."""
    return [_put_request(number, line) for number, line in _spec_lines(spec)]


def _spec_lines(spec: Any) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines of a binary spec stream, each bounded and decoded."""
    number = 0
    while line := spec.readline(limits.MAX_READ_BYTES + 1):
        number += 1
        if len(line) > limits.MAX_READ_BYTES:
            raise InvalidInputError(
                f"spec line {number} is longer than {limits.MAX_READ_BYTES:,} bytes"
            )
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"spec line {number} is not UTF-8 text: {exc}") from exc
        if text.strip():
            yield number, text


def _put_request(line_number: int, line: str) -> PutRequest:
    """One line of a ``put-many`` spec as a request; errors name the line."""
    where = f"spec line {line_number}"
    spec = load_json(line, where)
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{where} must be a JSON object, got {line[:60]!r}")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(_SPEC_KEYS))}"
        )
    paths = spec.get("paths")
    if not isinstance(spec.get("name"), str) or not isinstance(paths, list) or not paths:
        raise InvalidInputError(f'{where}: needs "name" (text) and "paths" (a non-empty list)')
    for key, value in spec.items():
        if not isinstance(value, _SPEC_TYPES[key]):
            wanted = " or ".join(
                "null" if t is type(None) else t.__name__ for t in _SPEC_TYPES[key]
            )
            raise InvalidInputError(f"{where}: {key!r} must be {wanted}, got {value!r:.60}")
    for key in ("paths", "inputs"):
        for index, item in enumerate(spec.get(key, ())):
            limits.check_text(item, f"{where}: {key}[{index}]")
    for path in map(Path, paths):
        if not path.exists():
            raise InvalidInputError(f"{where}: path {str(path)!r} does not exist")
    return PutRequest(
        spec["name"],
        Path(paths[0]) if len(paths) == 1 else [Path(p) for p in paths],
        kind=spec.get("kind", "output"),
        metadata=spec.get("metadata"),
        retention_class=spec.get("retention_class"),
        inputs=spec.get("inputs", ()),
        provenance={k: spec.get(k) for k in ("run_id", "producer", "code_version")},
    )

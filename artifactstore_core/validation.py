"""Metadata validation against the JSON Schema registered for a package kind."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for

from artifactstore_core.errors import InvalidInputError, SchemaViolationError


def check_schema(kind: str, schema: Any) -> dict[str, Any]:
    """``schema`` if it is a valid JSON Schema object, else ``InvalidInputError``."""
    if not isinstance(schema, dict):
        raise InvalidInputError(
            f"the schema for kind {kind!r} must be a JSON object, got {type(schema).__name__}"
        )
    try:
        validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        raise InvalidInputError(f"invalid JSON Schema for kind {kind!r}: {exc.message}") from exc
    return schema


def validate_metadata(kind: str, schema: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Raise ``SchemaViolationError`` naming the offending field if ``metadata`` fails."""
    validator_class = validator_for(schema, default=jsonschema.Draft202012Validator)
    error = best_match(validator_class(schema).iter_errors(metadata))
    if error is None:
        return
    field = error.json_path.removeprefix("$").lstrip(".") or "(the whole object)"
    raise SchemaViolationError(
        f"metadata for kind {kind!r} violates its schema at field {field!r}: {error.message}"
    )

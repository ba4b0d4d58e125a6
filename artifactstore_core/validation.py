"""Metadata validation against the JSON Schema registered for a package kind.

Validation never fetches anything (a ``$ref`` must resolve inside the schema or to a
standard meta-schema) and never runs a ``pattern`` that can take exponential time on
the regex engine's backtracking: such schemas are refused when registered, and a put
against one already in the log is refused naming the pattern.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY as SPECIFICATIONS  # type: ignore[import-untyped]
from referencing.jsonschema import DRAFT202012

from artifactstore_core.errors import InvalidInputError, SchemaViolationError

# The stdlib's regex parser: the tree ``re`` compiles, to look for nested repeats.
_sre: Any = importlib.import_module("re._parser")
_MAX_SAFE_REPEAT = 32
"""A repeat bounded by at most this many is treated as bounded."""
#: No retrieval function: a reference outside the schema is unresolvable, never fetched.
_NO_RETRIEVAL: referencing.Registry[Any] = referencing.Registry()


def check_schema(kind: str, schema: Any) -> dict[str, Any]:
    """``schema`` if it is a valid, self-contained JSON Schema object whose patterns
    cannot backtrack exponentially; else ``InvalidInputError``."""
    if not isinstance(schema, dict):
        raise InvalidInputError(
            f"the schema for kind {kind!r} must be a JSON object, got {type(schema).__name__}"
        )
    validator_class = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInputError(f"invalid JSON Schema for kind {kind!r}: {exc.message}") from exc
    except RecursionError as exc:
        raise InvalidInputError(f"the schema for kind {kind!r} is nested too deeply") from exc
    resource = referencing.Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = SPECIFICATIONS.resolver_with_root(resource)
    for ref in _values(schema, ("$ref", "$dynamicRef")):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            raise InvalidInputError(
                f"the schema for kind {kind!r} refers to {ref!r}, which is not inside the "
                "schema; remote references are not fetched, embed the definition instead"
            ) from exc
    _check_patterns(kind, schema)
    return schema


def validate_metadata(kind: str, schema: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Raise ``SchemaViolationError`` naming the offending field if ``metadata`` fails."""
    _check_patterns(kind, schema)
    validator_class = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        error = best_match(validator_class(schema, registry=_NO_RETRIEVAL).iter_errors(metadata))
    except referencing.exceptions.Unresolvable as exc:
        raise InvalidInputError(
            f"the schema for kind {kind!r} refers to {getattr(exc, 'ref', exc)!r}, which "
            "cannot be resolved without fetching it; register a self-contained schema"
        ) from exc
    if error is None:
        return
    field = error.json_path.removeprefix("$").lstrip(".") or "(the whole object)"
    raise SchemaViolationError(
        f"metadata for kind {kind!r} violates its schema at field {field!r}: {error.message}"
    )


def _values(node: Any, keys: tuple[str, ...]) -> Iterator[str]:
    """Every text value under one of ``keys`` anywhere in ``node``."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in keys and isinstance(value, str):
                    yield value
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _patterns(schema: dict[str, Any]) -> Iterator[str]:
    yield from _values(schema, ("pattern",))
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            properties = item.get("patternProperties")
            if isinstance(properties, dict):
                yield from properties
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_patterns(kind: str, schema: dict[str, Any]) -> None:
    for pattern in _patterns(schema):
        problem = _backtracking_risk(pattern)
        if problem:
            raise InvalidInputError(
                f"the schema for kind {kind!r} has pattern {pattern!r}, refused: {problem} "
                "can make matching take exponential time (atomic groups (?>…) and "
                "possessive quantifiers *+ ++ are accepted)"
            )


@functools.lru_cache(maxsize=256)
def _backtracking_risk(pattern: str) -> str | None:
    """Why ``pattern`` may backtrack exponentially, or ``None``.

    Refused shapes: an unbounded repeat around a variable-length repeat or an alternation
    (``(a+)+``, ``(ab|a)*``), and backreferences. Atomic groups and possessive repeats
    never backtrack into themselves, so they are not looked into.
    """
    try:
        tree = _sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None  # not a regex ``re`` compiles: the meta-schema check reports it
    return _risk(tree.data, inside_repeat=False)


def _risk(items: Any, *, inside_repeat: bool) -> str | None:
    for op, av in items:
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "a backreference"
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = av
            if inside_repeat and high != low:
                return "a repeat inside an unbounded repeat"
            unbounded = high == _sre.MAXREPEAT or high > _MAX_SAFE_REPEAT
            problem = _risk(body.data, inside_repeat=inside_repeat or unbounded)
            if problem:
                return problem
        elif name == "BRANCH":
            if inside_repeat:
                return "an alternation inside an unbounded repeat"
            for branch in av[1]:
                problem = _risk(branch.data, inside_repeat=inside_repeat)
                if problem:
                    return problem
        elif name == "SUBPATTERN":
            problem = _risk(av[-1].data, inside_repeat=inside_repeat)
            if problem:
                return problem
        elif name in ("ASSERT", "ASSERT_NOT"):
            problem = _risk(av[1].data, inside_repeat=inside_repeat)
            if problem:
                return problem
    return None

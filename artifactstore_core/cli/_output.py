"""Printing: one ``emit`` for the JSON-or-text choice, tables, sizes and progress bars."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

PROGRESS_MIN_BYTES = 8 * 1024 * 1024
_JSON = "artifactstore.json"  # key in click's shared ``ctx.meta``


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[_JSON] = value
    return value


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--json`` flag of a command; ``emit`` obeys it."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON.",
        expose_value=False,
        callback=_remember_json,
    )(function)


def emit(result: Any, text: str | Callable[[], object]) -> None:
    """Print a command's result: with ``--json``, ``result`` as JSON, otherwise ``text``
    (a line, or a function that prints the human form).

    ``result`` is built only under ``--json``: a function returning the value, an object
    with a ``to_dict()``, a list of those, or a plain JSON-able value.
    """
    if click.get_current_context().meta.get(_JSON):
        click.echo(json.dumps(_plain(result), indent=2, sort_keys=False, default=str))
    elif isinstance(text, str):
        click.echo(text)
    else:
        text()


def _plain(value: Any) -> Any:
    if callable(value):
        return value()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print ``rows`` in columns under ``headers`` and a rule."""
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))


def size(count: int) -> str:
    """A byte count for people: ``5 B``, ``1.5 KiB`` ... ``GiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A byte progress bar on a terminal for large work; nothing otherwise."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update

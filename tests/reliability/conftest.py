"""Shared helpers of the reliability suite: the short form runs in ``make test``, the long
form with ``ARTIFACTSTORE_RELIABILITY_LONG=1`` (``make reliability``)."""

from __future__ import annotations

import os


def long_run() -> bool:
    """Whether ``ARTIFACTSTORE_RELIABILITY_LONG=1`` asks for the long form."""
    return os.environ.get("ARTIFACTSTORE_RELIABILITY_LONG") == "1"

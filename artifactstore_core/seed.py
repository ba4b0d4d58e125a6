"""Seed rows: the five v1 retention classes."""

from __future__ import annotations

from typing import Any

DAY = 86_400

RETENTION_CLASS_SEEDS: tuple[dict[str, Any], ...] = (
    {
        "name": "transient",
        "description": "Scratch outputs kept for a week.",
        "default_duration_seconds": 7 * DAY,
        "protected": False,
        "transitions": None,
    },
    {
        "name": "raw-evidence",
        "description": "Raw logs and captures; moved to cold storage after 30 days.",
        "default_duration_seconds": 90 * DAY,
        "protected": False,
        "transitions": [{"after_seconds": 30 * DAY, "tier": "cold"}],
    },
    {
        "name": "summary-evidence",
        "description": "Summaries and reports kept for a year.",
        "default_duration_seconds": 365 * DAY,
        "protected": False,
        "transitions": None,
    },
    {
        "name": "release-evidence",
        "description": "Evidence bundles for releases, kept seven years; never shortened.",
        "default_duration_seconds": 2_555 * DAY,
        "protected": True,
        "transitions": None,
    },
    {
        "name": "permanent-record",
        "description": "Records that never expire.",
        "default_duration_seconds": None,
        "protected": True,
        "transitions": None,
    },
)

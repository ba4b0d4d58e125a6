"""Dagster integration for artifact-store."""

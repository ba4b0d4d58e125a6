"""Retention execution: sweeps (expire + collect), tier moves and restores, under a lease."""

"""Example: a daily evidence pipeline recorded in artifact-store (see README.md here)."""

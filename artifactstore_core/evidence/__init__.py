"""Verifiable evidence: signing keys (``keys``), DSSE envelopes (``dsse``) and the
provenance statements of stored packages (``statements``); see docs/evidence.md."""

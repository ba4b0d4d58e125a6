"""The append-only event log: canonical CBOR payloads, a hash chain, append/read/verify."""

from artifactstore_core.eventlog.log import EventLog, RecordedEvent, VerifyReport

__all__ = ["EventLog", "RecordedEvent", "VerifyReport"]

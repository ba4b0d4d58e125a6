"""The ``Digest`` value type (``blake3:<hex>`` / ``sha256:<hex>``) and ``BlobHash``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["blake3", "sha256"]
ALGORITHMS: tuple[Algorithm, ...] = ("blake3", "sha256")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DigestError(ValueError):
    """Text that is not a valid ``<algorithm>:<64 lowercase hex>`` digest."""


@dataclass(frozen=True, slots=True)
class Digest:
    """A content digest; its text form is ``<algorithm>:<64 lowercase hex digits>``."""

    algorithm: Algorithm
    hex: str

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise DigestError(f"unknown digest algorithm {self.algorithm!r}; use blake3 or sha256")
        if not _HEX64.fullmatch(self.hex):
            raise DigestError(
                f"{self.algorithm} digest must be 64 lowercase hex digits, got {self.hex!r}"
            )

    @classmethod
    def parse(cls, text: str, *, algorithm: Algorithm | None = None) -> Digest:
        """Parse ``blake3:<hex>``; with ``algorithm`` given, also accept the bare hex."""
        if not isinstance(text, str):
            raise DigestError(f"a digest must be text, got {type(text).__name__}")
        prefix, sep, hexpart = text.partition(":")
        if not sep:
            if algorithm is None:
                raise DigestError(f"digest {text!r} lacks an algorithm prefix like 'blake3:'")
            prefix, hexpart = algorithm, text
        if prefix not in ALGORITHMS:
            raise DigestError(f"unknown digest algorithm {prefix!r} in {text!r}")
        if algorithm is not None and prefix != algorithm:
            raise DigestError(f"expected a {algorithm} digest, got {text!r}")
        return cls(prefix, hexpart)

    @classmethod
    def looks_like(cls, text: str) -> bool:
        """Whether ``text`` has the shape of a digest (used to classify references)."""
        prefix, sep, hexpart = text.partition(":")
        return bool(sep) and prefix in ALGORITHMS and bool(_HEX64.fullmatch(hexpart))

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


@dataclass(frozen=True, slots=True)
class BlobHash:
    """What identifies a blob: its BLAKE3 digest (primary), SHA-256 digest and size."""

    blake3: Digest
    sha256: Digest
    size: int

    def __post_init__(self) -> None:
        if self.blake3.algorithm != "blake3" or self.sha256.algorithm != "sha256":
            raise DigestError("BlobHash needs a blake3 and a sha256 digest")
        if self.size < 0:
            raise DigestError(f"blob size must not be negative, got {self.size}")

    @property
    def content_address(self) -> str:
        """The blob's address, ``blake3:<hex>``."""
        return str(self.blake3)

    @classmethod
    def from_hex(cls, blake3_hex: str, sha256_hex: str, size: int) -> BlobHash:
        return cls(Digest("blake3", blake3_hex), Digest("sha256", sha256_hex), size)


def matches(expected: BlobHash | Digest, actual: BlobHash) -> bool:
    """Whether ``actual`` satisfies ``expected`` (a full ``BlobHash`` or one ``Digest``)."""
    if isinstance(expected, BlobHash):
        return expected == actual
    return expected == (actual.blake3 if expected.algorithm == "blake3" else actual.sha256)

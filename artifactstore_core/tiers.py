"""The storage tiers of a registry: a blob store per tier name (``hot``, ``cold``, ``archive``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from artifactstore_core.domain.package import Package
from artifactstore_core.domain.retention import HOT, TIERS, reading_tier
from artifactstore_core.errors import ConfigurationError, InvalidInputError
from artifactstore_core.storage import BlobStore


class Tiers(Mapping[str, BlobStore]):
    """The configured backends by tier. ``hot`` always exists: new bytes are written there.

    A read-only mapping (``tiers["cold"]``, ``"cold" in tiers``, ``tiers.items()``) over the
    configured tiers, plus the two questions every tier-aware operation asks:
    ``backend(tier)`` and ``for_reading(package)``.
    """

    def __init__(self, hot: BlobStore, others: Mapping[str, BlobStore] | None = None) -> None:
        for name in others or {}:
            check_tier(name)
        self._stores: dict[str, BlobStore] = {HOT: hot, **(others or {})}

    @property
    def hot(self) -> BlobStore:
        """Where new bytes are written."""
        return self._stores[HOT]

    def backend(self, tier: str) -> BlobStore:
        """The backend of ``tier``; ``ConfigurationError`` naming the setting if none."""
        check_tier(tier)
        store = self._stores.get(tier)
        if store is None:
            setting = f"ARTIFACTSTORE_TIER_{tier.upper()}_URL"
            raise ConfigurationError(f"tier {tier!r} has no backend configured; set {setting}")
        return store

    def for_reading(self, package: Package) -> BlobStore:
        """The backend a package's files are read from (hot for a restored archived one)."""
        tier = reading_tier(package.retrieval_tier)
        store = self._stores.get(tier)
        if store is None:
            raise ConfigurationError(
                f"package {package.reference} lives in tier {tier!r}, which has no backend "
                f"configured; set ARTIFACTSTORE_TIER_{tier.upper()}_URL"
            )
        return store

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def __getitem__(self, tier: str) -> BlobStore:
        return self._stores[tier]

    def __iter__(self) -> Iterator[str]:
        return iter(self._stores)

    def __len__(self) -> int:
        return len(self._stores)


def check_tier(tier: str) -> str:
    """``tier`` if it is a tier name; ``InvalidInputError`` listing them otherwise."""
    if tier not in TIERS:
        raise InvalidInputError(f"unknown tier {tier!r}; use one of {', '.join(TIERS)}")
    return tier

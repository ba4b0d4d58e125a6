"""Signers for the evidence tests, and the registry ``store`` fixture on each database."""

from __future__ import annotations

import pytest
from securesystemslib.signer import CryptoSigner

from tests.registry.conftest import store

__all__ = ["store"]


@pytest.fixture(scope="session")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@pytest.fixture(scope="session")
def other_signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()

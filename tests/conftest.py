"""Shared fixtures: no network, seeded randomness, the real-data folder, isolated state."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from quantdesk.quant_core.settings import shared_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]

_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX socket path
    if not (isinstance(address, tuple) and address):
        return False
    host = str(address[0])
    return host in _LOCAL_HOSTS or host.startswith("127.")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any connection to a non-loopback address an error in every test."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise RuntimeError(f"Test tried to reach the network: {address!r}")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _is_local(address):
            raise RuntimeError(f"Test tried to reach the network: {address!r}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point quantdesk's state folder at a temporary directory for each test."""
    home = tmp_path / "quantdesk-home"
    monkeypatch.setenv("QUANTDESK_HOME", str(home))
    return home


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(20261120)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data folder (``QUANTDESK_SHARED_DATA`` or ``../shared/data``).

    Skips the test with a reason when it is absent.
    """
    folder = shared_data_dir()
    if folder is None:
        pytest.skip(
            "real data folder not found: set QUANTDESK_SHARED_DATA or place it at ../shared/data"
        )
    return folder

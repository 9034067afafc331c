"""Fixtures of the agents tests: the scripted local provider server.

Under pytest's importlib mode ``tests/`` is not importable, so the helper module is loaded here
by path and registered as ``fake_servers``; test modules then ``import fake_servers``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def _load_fake_servers() -> ModuleType:
    if "fake_servers" in sys.modules:
        return sys.modules["fake_servers"]
    spec = importlib.util.spec_from_file_location(
        "fake_servers", Path(__file__).with_name("fake_servers.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_servers"] = module
    spec.loader.exec_module(module)
    return module


fake_servers = _load_fake_servers()


@pytest.fixture
def fake_server() -> Iterator[fake_servers.FakeServer]:
    """A started :class:`FakeServer` on 127.0.0.1, stopped after the test."""
    server = fake_servers.FakeServer().start()
    try:
        yield server
    finally:
        server.stop()

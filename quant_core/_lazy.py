"""Lazy re-exports for package ``__init__`` modules (PEP 562).

``quantdesk.quant_core``, ``rag``, ``tools``, ``agents`` and ``agents.research`` re-export their
public names without importing the modules that define them: importing a package must stay
cheap (``quantdesk tool run`` and the MCP server import only what a call needs), and polars,
torch or LangGraph load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names live in its submodules.

    Args:
        namespace: The package's ``globals()`` (its ``__name__`` and ``__all__`` are read
            from it; a loaded name is cached in it, so later lookups are plain attributes).
        exports: Public name -> submodule (relative to the package) that defines it.

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's module level.
    """
    package = namespace["__name__"]

    def get_attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def list_names() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    return get_attribute, list_names

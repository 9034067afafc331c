"""Entry point of the ``quantdesk`` command (placeholder until the CLI lands)."""

from __future__ import annotations


def main() -> None:
    """Run the quantdesk command line."""
    raise SystemExit(0)

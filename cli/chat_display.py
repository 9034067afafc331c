"""How ``quantdesk chat`` shows a turn: plain lines on a pipe, a spinner on a terminal.

:class:`ChatDisplay` turns the typed chat events into text; :func:`drive_turn` feeds it a turn's
events as they arrive and, while it waits (a tool running, a model thinking), ticks the
progress display: a spinner with the elapsed time on a terminal, and on a pipe a plain
``... running walk_forward_cv (10 s)`` line every few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import click

from quantdesk.agents.research.chat_events import (
    ApprovalRequested,
    ChatEvent,
    CriticReviewed,
    Decided,
    HoldoutUpdate,
    NodeStarted,
    RiskAssessed,
    TextDelta,
    ToolFinished,
    ToolStarted,
    TurnEnded,
)

__all__ = ["ChatDisplay", "drive_turn"]

_SPINNER = "|/-\\"


class ChatDisplay:
    """Writes chat events as text: plain lines on a pipe, a spinner and colour on a terminal.

    Args:
        write: Writes a string as is (no newline added).
        tty: Whether the output is a terminal.
        progress_every_s: On a pipe, print ``... running <tool> (N s)`` this often while a
            tool runs (the first after this long).
    """

    def __init__(
        self, write: Callable[[str], None], *, tty: bool, progress_every_s: float = 5.0
    ) -> None:
        self.write = write
        self.tty = tty
        self.progress_every_s = progress_every_s
        self._at_line_start = True
        self._tool: tuple[str, float] | None = None
        self._next_progress = 0.0
        self._spin = 0

    def line(self, text: str = "", *, style: dict[str, Any] | None = None) -> None:
        """Print one line (ending any streamed text first)."""
        self._clear_spinner()
        if not self._at_line_start:
            self.write("\n")
        self.write((click.style(text, **style) if self.tty and style else text) + "\n")
        self._at_line_start = True

    def _clear_spinner(self) -> None:
        if self.tty and self._tool is not None and self._spin:
            self.write("\r\x1b[2K")
            self._spin = 0

    def end_tool(self) -> None:
        """Stop the progress display (the tool finished, or the turn stopped)."""
        self._clear_spinner()
        self._tool = None

    def tick(self) -> None:
        """Show that a tool is still running (called while waiting for the next event)."""
        if self._tool is None:
            return
        name, started = self._tool
        elapsed = time.monotonic() - started
        if self.tty:
            self._spin += 1
            frame = _SPINNER[self._spin % len(_SPINNER)]
            self.write(f"\r\x1b[2K  {frame} running {name} ({elapsed:.0f} s)")
        elif elapsed >= self._next_progress:
            self.line(f"  ... running {name} ({elapsed:.0f} s)")
            self._next_progress += self.progress_every_s

    def show(self, event: ChatEvent) -> None:
        """Display one event."""
        if isinstance(event, TextDelta):
            self._clear_spinner()
            self.write(event.text)
            self._at_line_start = event.text.endswith("\n")
        elif isinstance(event, NodeStarted):
            if event.node in ("researcher", "critic", "risk"):
                self.line(f"[{event.node}]", style={"fg": "cyan", "bold": True})
        elif isinstance(event, ToolStarted):
            self.line(f"  -> {event.name}({event.summary})", style={"dim": True})
            self._tool = (event.name, time.monotonic())
            self._next_progress = self.progress_every_s
        elif isinstance(event, ToolFinished):
            self.end_tool()
            mark = "ok" if event.ok else ("REFUSED" if event.refused else "ERROR")
            colour = "green" if event.ok else "red"
            self.line(
                f"  {mark} {event.name} [{event.call_id}] {event.duration_s:.1f} s: "
                f"{event.summary}",
                style={"fg": colour},
            )
        else:
            self._show_verdict(event)

    def _show_verdict(self, event: ChatEvent) -> None:
        if isinstance(event, CriticReviewed):
            asks = f"; asks for {', '.join(event.requested)}" if event.requested else ""
            self.line(
                f"  review {event.round} ({event.by}): {len(event.blocking)} blocking, "
                f"{event.minor} minor concern(s){asks}"
            )
            for concern in event.blocking:
                self.line(f"  - blocking: {concern}", style={"fg": "yellow"})
        elif isinstance(event, RiskAssessed):
            self.line(f"  {'VETO' if event.veto else 'no veto'}")
            for finding in event.findings:
                if finding.startswith("[veto]"):
                    self.line(f"  - {finding}", style={"fg": "red"})
        elif isinstance(event, Decided):
            colour = {"accept": "green", "reject": "red"}.get(event.kind, "yellow")
            self.line(f"[decision] {event.kind.upper()}", style={"fg": colour, "bold": True})
            for reason in event.reasons:
                self.line(f"  - {reason}")
        elif isinstance(event, HoldoutUpdate):
            self.line(f"[holdout] {event.status}: {event.note}")
        elif isinstance(event, ApprovalRequested):
            self.line(f"[holdout] {event.question}", style={"fg": "yellow", "bold": True})
            self.line("  /holdout evaluates it on the holdout (once); /holdout no declines.")
        elif isinstance(event, TurnEnded) and event.status == "complete":
            self.line("Turn finished. /report prints the cited report.")


async def drive_turn(
    events: AsyncIterator[ChatEvent], display: ChatDisplay, *, tick_s: float = 0.2
) -> TurnEnded | None:
    """Show a turn's events as they come, ticking the progress display while waiting.

    Returns:
        The turn's :class:`TurnEnded` event (``None`` if the stream ended without one).
    """
    iterator = aiter(events)
    ended: TurnEnded | None = None
    pending: asyncio.Future[ChatEvent] = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=tick_s)
            if not done:
                display.tick()
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return ended
            display.show(event)
            if isinstance(event, TurnEnded):
                ended = event
            pending = asyncio.ensure_future(anext(iterator))
    finally:
        # Interrupted (Ctrl-C) or failed: let the turn finish its own cleanup (it saves the
        # session's usage) before the caller closes the session store under it.
        if not pending.done():
            pending.cancel()
            await asyncio.wait({pending})
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
        display.end_tool()

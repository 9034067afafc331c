"""Record a session's model calls and replay them exactly.

:class:`RecordingModel` wraps any model and appends one JSON line per call to a file: the
request, its SHA-256 hash, and the response. :class:`ReplayModel` reads that file and answers
the same requests with the same responses, without calling any model, so a research session
is reproducible and debuggable offline. A request that differs from the recorded one (a
changed prompt, tool result or tool list) fails with :class:`ReplayMismatchError` naming the
call and the first field that differs, instead of silently replaying a wrong answer.

File format (JSON lines, one object per call, ``version`` on every line so files can be
appended to across versions)::

    {"version": 1, "seq": 0, "model": "anthropic:...", "request_hash": "…",
     "request": {...ModelRequest...}, "response": {...ModelResponse...}}

Requests and responses hold no credentials (keys live in the adapters' HTTP clients); as a
second line of defence every line is scrubbed of the values of the provider key variables
before it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantdesk.agents.messages import ModelRequest, ModelResponse, StreamEvent
from quantdesk.agents.testing import response_events
from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    from quantdesk.agents.model import Model

__all__ = [
    "RECORDING_VERSION",
    "SECRET_ENV_VARS",
    "RecordingModel",
    "ReplayMismatchError",
    "ReplayModel",
    "request_hash",
]

RECORDING_VERSION = 1
SECRET_ENV_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "QUANTDESK_OPENAI_API_KEY", "XAI_API_KEY")
# The transport timeout does not change the answer, so it does not take part in the hash.
_HASH_EXCLUDE = {"timeout_s"}


class ReplayMismatchError(InputError):
    """A replayed session sent a request the recording does not hold (or ran past its end)."""


def _canonical(req: ModelRequest) -> dict[str, Any]:
    return req.model_dump(mode="json", exclude=_HASH_EXCLUDE)


def request_hash(req: ModelRequest) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, without ``timeout_s``)."""
    text = json.dumps(_canonical(req), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _scrub(line: str) -> str:
    for var in SECRET_ENV_VARS:
        secret = os.environ.get(var, "")
        if len(secret) >= 8:
            line = line.replace(secret, "[REDACTED]")
    return line


def _first_difference(expected: Any, got: Any, path: str = "request") -> str:
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(set(expected) | set(got)):
            if expected.get(key) != got.get(key):
                return _first_difference(expected.get(key), got.get(key), f"{path}.{key}")
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return f"{path} has {len(got)} items, the recording {len(expected)}"
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
    return f"{path} is {json.dumps(got)[:120]}, the recording has {json.dumps(expected)[:120]}"


class RecordingModel:
    """Call ``inner`` and append every request/response pair to ``path``.

    Args:
        inner: The model that answers.
        path: JSON-lines file (parent folders are created).
        append: Continue an existing recording (a resumed session) instead of starting over.
    """

    def __init__(self, inner: Model, path: Path | str, *, append: bool = False) -> None:
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if append and self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                self._seq = sum(1 for line in handle if line.strip())
        else:
            self.path.write_text("", encoding="utf-8")
            self._seq = 0

    @property
    def model_id(self) -> str:
        """The wrapped model's id."""
        return self.inner.model_id

    def _write(self, req: ModelRequest, response: ModelResponse) -> None:
        record = {
            "version": RECORDING_VERSION,
            "seq": self._seq,
            "model": response.model,
            "request_hash": request_hash(req),
            "request": _canonical(req),
            "response": response.model_dump(mode="json"),
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(_scrub(json.dumps(record, sort_keys=True)) + "\n")
        self._seq += 1

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Call the inner model and record the pair (nothing is written if the call fails)."""
        response = await self.inner.request(req)
        self._write(req, response)
        return response

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the inner model; the pair is recorded when the ``done`` event arrives."""
        async for event in self.inner.stream(req):
            if event.kind == "done" and event.response is not None:
                self._write(req, event.response)
            yield event


class ReplayModel:
    """Answer requests from a recording, exactly, without calling a model.

    Args:
        path: A file written by :class:`RecordingModel`.
        strict_order: Require the calls in recorded order (default). ``False`` matches each
            request to the first unused record with the same hash (concurrent agents).

    Raises:
        InputError: the file is missing, empty, malformed or of an unknown version.
    """

    def __init__(self, path: Path | str, *, strict_order: bool = True) -> None:
        self.path = Path(path)
        self.strict_order = strict_order
        if not self.path.is_file():
            raise InputError(
                f"Recording {str(self.path)!r} does not exist.",
                fix="record a session first with RecordingModel(inner, path).",
            )
        self._records: list[dict[str, Any]] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"Line {number} of recording {str(self.path)!r} is not JSON: {exc.msg}.",
                    fix="use an intact recording file (a crash can truncate the last line).",
                ) from exc
            if record.get("version") != RECORDING_VERSION:
                raise InputError(
                    f"Line {number} of {str(self.path)!r} has recording version "
                    f"{record.get('version')!r}; this quantdesk reads {RECORDING_VERSION}.",
                    fix="re-record the session with this version of quantdesk.",
                )
            self._records.append(record)
        if not self._records:
            raise InputError(f"Recording {str(self.path)!r} is empty.", fix="record a session.")
        self._used = [False] * len(self._records)
        self._next = 0

    @property
    def model_id(self) -> str:
        """The recorded model's id (responses keep the model that produced them)."""
        return str(self._records[0]["model"])

    @property
    def remaining(self) -> int:
        """Recorded calls not replayed yet."""
        return self._used.count(False)

    def _find(self, req: ModelRequest) -> int:
        digest = request_hash(req)
        if not self.strict_order:
            for index, record in enumerate(self._records):
                if not self._used[index] and record["request_hash"] == digest:
                    return index
            raise ReplayMismatchError(
                f"No unused recorded call matches request {digest[:12]} "
                f"({self.remaining} of {len(self._records)} calls left in {str(self.path)!r}).",
                fix="replay the recording with the same code, prompts and data it was made with.",
            )
        index = self._next
        if index >= len(self._records):
            raise ReplayMismatchError(
                f"The session made call #{index} but {str(self.path)!r} recorded only "
                f"{len(self._records)} calls.",
                fix="replay with the same inputs, or record the session again.",
            )
        record = self._records[index]
        if record["request_hash"] != digest:
            diff = _first_difference(record["request"], _canonical(req))
            raise ReplayMismatchError(
                f"Call #{index} differs from the recording {str(self.path)!r} (hash "
                f"{digest[:12]} != {record['request_hash'][:12]}): {diff}.",
                fix="replay with the same code, prompts, tools and data, or record again.",
            )
        return index

    async def request(self, req: ModelRequest) -> ModelResponse:
        """The recorded response of this request.

        Raises:
            ReplayMismatchError: the request is not the recorded one, or the recording ended.
        """
        index = self._find(req)
        self._used[index] = True
        self._next = index + 1
        return ModelResponse.model_validate(self._records[index]["response"])

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """The recorded response as stream events."""
        for event in response_events(await self.request(req)):
            yield event

"""Opening the Chroma collection that holds the index's vectors: embedded or on a server.

The embedded ``PersistentClient`` keeps the vectors in the index folder. A Chroma server
(``chroma run --path /srv/chroma --port 8000``) is reached through ``HttpClient`` when a URL
is configured; the collection is created with cosine distance and without an embedding
function, since the index always hands Chroma its own vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from quantdesk.quant_core.errors import InputError

__all__ = ["OpenCollection", "open_collection"]


@dataclass(frozen=True)
class OpenCollection:
    """A Chroma collection and the largest batch its client accepts per write.

    Attributes:
        collection: The Chroma collection.
        max_batch: Records per ``upsert`` the client accepts.
    """

    collection: Any
    max_batch: int


def open_collection(folder: Path, url: str | None, name: str, model_id: str) -> OpenCollection:
    """Open (or create) the collection ``name``.

    Args:
        folder: Folder of the embedded store (used when ``url`` is empty).
        url: ``http(s)://host:port`` of a Chroma server, or ``None`` for the embedded store.
        name: Collection name (3+ characters).
        model_id: Recorded in the collection's metadata.

    Raises:
        InputError: ``url`` is not an http(s)://host:port address.
    """
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if url:
        parts = urlparse(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                f"chroma_url={url!r} is not an http(s)://host:port address.",
                fix="start a server with `chroma run --path DIR` and pass its URL.",
            )
        secure = parts.scheme == "https"
        client = chromadb.HttpClient(
            host=parts.hostname, port=parts.port or (443 if secure else 8000), ssl=secure,
            settings=settings,
        )  # fmt: skip
    else:
        client = chromadb.PersistentClient(path=str(folder), settings=settings)
    collection = client.get_or_create_collection(
        name,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"quantdesk_model_id": model_id},
        embedding_function=None,
    )
    return OpenCollection(collection=collection, max_batch=int(client.get_max_batch_size()))

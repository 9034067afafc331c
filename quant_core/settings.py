"""Configuration: argument > CLI flag > ``QUANTDESK_*`` environment variable > ``.env`` > default.

Functions that need a setting take it as an argument; when the argument is ``None`` they call
:func:`get_settings`, which reads the environment (and a ``.env`` file in the working
directory) once per call so that tests can change variables with ``monkeypatch``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantdesk.quant_core.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    Settings = BaseSettings

__all__ = ["Settings", "get_settings", "shared_data_dir"]


@functools.cache
def _settings_class() -> type[Settings]:
    # Built on first use: pydantic-settings (with asyncio and dotenv) costs ~20 ms to import,
    # which one-shot commands that never read a setting should not pay.
    from pydantic import Field
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings):
        """quantdesk settings, each readable from a ``QUANTDESK_<NAME>`` variable.

        Attributes:
            shared_data: Folder of the real public data used by tests, evaluations and
                benchmarks (``QUANTDESK_SHARED_DATA``). Never copied into the repository.
            home: Folder for quantdesk's own state: trial registry, research contexts,
                caches, saved models (``QUANTDESK_HOME``).
            seed: Default seed for every random generator (``QUANTDESK_SEED``).
            data_dirs: Folders the tool layer may read price files from, separated by
                ``os.pathsep`` (``QUANTDESK_DATA_DIRS``); empty means the shared data folder
                and ``./data``. Paths outside them are refused (no traversal).
            sec_company: Company name sent to SEC EDGAR with every request
                (``QUANTDESK_SEC_COMPANY``; EDGAR's fair-access policy requires one).
            sec_email: Contact e-mail sent to SEC EDGAR (``QUANTDESK_SEC_EMAIL``).
            chroma_url: URL of a Chroma server (``QUANTDESK_CHROMA_URL``); empty means the
                embedded store under ``home``.
            embedding_model: Sentence-transformers model of the filing index
                (``QUANTDESK_EMBEDDING_MODEL``): a folder, or a model id already in the local
                Hugging Face cache (never downloaded); empty means the bundled
                all-MiniLM-L6-v2. An index remembers its model and refuses another one.
            reranker: Cross-encoder that re-orders the top filing-search results
                (``QUANTDESK_RERANKER``): a folder, or a model id already in the local
                Hugging Face cache (never downloaded); empty means no re-ranking.
            model: Language model id (``QUANTDESK_MODEL``): ``anthropic:<model>``,
                ``openai:<model>``, ``openai-compatible:<model>@<base url>`` or ``offline``
                (the default when empty). API keys are read by the providers from their own
                variables (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``,
                ``QUANTDESK_OPENAI_API_KEY``) and are never part of the settings.
        """

        model_config = SettingsConfigDict(
            env_prefix="QUANTDESK_", env_file=".env", extra="ignore", frozen=True
        )

        shared_data: Path = Field(default=Path("../shared/data"))
        home: Path = Field(default=Path(".quantdesk"))
        seed: int = Field(default=7, ge=0)
        data_dirs: str = Field(default="")
        sec_company: str = Field(default="")
        sec_email: str = Field(default="")
        chroma_url: str = Field(default="")
        embedding_model: str = Field(default="")
        reranker: str = Field(default="")
        model: str = Field(default="")

    Settings.__module__ = __name__
    Settings.__qualname__ = "Settings"
    return Settings


def __getattr__(name: str) -> Any:
    if name == "Settings":
        return _settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sources_key() -> tuple[object, ...]:
    """What the settings are read from: the ``QUANTDESK_*`` variables and the ``.env`` file."""
    env = tuple(sorted((k.upper(), v) for k, v in os.environ.items() if _is_ours(k)))
    try:
        stat = os.stat(".env")
    except OSError:
        return (env, os.getcwd(), None)
    return (env, os.getcwd(), stat.st_mtime_ns, stat.st_size)


def _is_ours(name: str) -> bool:
    return name[:10].upper() == "QUANTDESK_"


_LAST: list[tuple[tuple[object, ...], Settings]] = []  # the last sources and their settings


def get_settings() -> Settings:
    """The settings as the environment and ``.env`` give them now.

    Read again whenever a ``QUANTDESK_*`` variable, the working directory or the ``.env``
    file changed since the last call; otherwise the last (frozen) settings are returned, since
    building them takes a fraction of a millisecond and tools ask many times per call.

    Raises:
        ConfigError: A ``QUANTDESK_*`` variable has an invalid value.
    """
    key = _sources_key()
    if _LAST and _LAST[0][0] == key:
        return _LAST[0][1]
    try:
        settings = _settings_class()()
    except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
        raise ConfigError(
            f"Invalid quantdesk setting: {exc}",
            fix="correct or unset the QUANTDESK_* environment variable named above.",
        ) from exc
    _LAST[:] = [(key, settings)]
    return settings


def shared_data_dir(path: Path | str | None = None) -> Path | None:
    """Locate the shared real-data folder, or return ``None`` when it is absent.

    Args:
        path: Explicit location. Otherwise ``QUANTDESK_SHARED_DATA`` (or ``.env``); otherwise
            ``../shared/data`` from the working directory, then ``shared/data`` beside the
            repository of an editable install.

    Returns:
        The resolved folder when it exists, else ``None`` (callers skip with a reason).
    """
    if path is not None:
        candidates = [Path(path)]
    else:
        settings = get_settings()
        candidates = [settings.shared_data]
        if "shared_data" not in settings.model_fields_set:
            package_root = Path(__file__).resolve().parents[1]
            candidates.append(package_root.parent / "shared" / "data")
    for candidate in candidates:
        folder = candidate.expanduser().resolve()
        if folder.is_dir():
            return folder
    return None

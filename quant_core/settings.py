"""Configuration: argument > CLI flag > ``QUANTDESK_*`` environment variable > ``.env`` > default.

Functions that need a setting take it as an argument; when the argument is ``None`` they call
:func:`get_settings`, which reads the environment (and a ``.env`` file in the working
directory) once per call so that tests can change variables with ``monkeypatch``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from quantdesk.quant_core.errors import ConfigError

__all__ = ["Settings", "get_settings", "shared_data_dir"]


class Settings(BaseSettings):
    """quantdesk settings, each readable from a ``QUANTDESK_<NAME>`` variable.

    Attributes:
        shared_data: Folder of the real public data used by tests, evaluations and
            benchmarks (``QUANTDESK_SHARED_DATA``). Never copied into the repository.
        home: Folder for quantdesk's own state: trial registry, research contexts,
            caches, saved models (``QUANTDESK_HOME``).
        seed: Default seed for every random generator (``QUANTDESK_SEED``).
    """

    model_config = SettingsConfigDict(
        env_prefix="QUANTDESK_", env_file=".env", extra="ignore", frozen=True
    )

    shared_data: Path = Field(default=Path("../shared/data"))
    home: Path = Field(default=Path(".quantdesk"))
    seed: int = Field(default=7, ge=0)


def get_settings() -> Settings:
    """Read the settings from the environment and ``.env`` now.

    Raises:
        ConfigError: A ``QUANTDESK_*`` variable has an invalid value.
    """
    try:
        return Settings()
    except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
        raise ConfigError(
            f"Invalid quantdesk setting: {exc}",
            fix="correct or unset the QUANTDESK_* environment variable named above.",
        ) from exc


def shared_data_dir(path: Path | str | None = None) -> Path | None:
    """Locate the shared real-data folder, or return ``None`` when it is absent.

    Args:
        path: Explicit location; otherwise ``QUANTDESK_SHARED_DATA`` or ``../shared/data``.

    Returns:
        The resolved folder when it exists, else ``None`` (callers skip with a reason).
    """
    folder = Path(path) if path is not None else get_settings().shared_data
    folder = folder.expanduser().resolve()
    return folder if folder.is_dir() else None

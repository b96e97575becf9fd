"""The one place configuration is read from the environment (prefix `LIANHU_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIANHU_", env_file=None, extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql://user:password@host:port/dbname; unset: SQLite in data_dir",
    )
    data_dir: Path = Field(default=Path("var"), description="where the SQLite store lives")
    rules_dir: Path | None = Field(
        default=None, description="rule-set folder; unset means the shipped routing_rules/default"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=64 * 1024, description="largest request body accepted")
    postgres_pool_size: int = 10
    nats_url: str | None = None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "lianhu.db"

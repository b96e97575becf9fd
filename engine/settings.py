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
    nats_url: str | None = Field(
        default=None, description="nats://host:port of JetStream; unset: embedded_nats decides"
    )
    embedded_nats: bool = Field(
        default=True, description="`lianhu serve` starts a local nats-server when nats_url is unset"
    )
    embedded_nats_port: int = Field(default=4222, description="its port (a free one if taken)")
    nats_stream: str = Field(default="CASES", description="the JetStream stream of case events")
    nats_subject_prefix: str = Field(default="cases", description="first token of event subjects")
    nats_command_prefix: str = Field(
        default="lianhu.commands", description="subjects departments send commands to"
    )
    nats_duplicate_window: float = Field(default=120.0, description="seconds JetStream dedupes")
    nats_ack_timeout: float = Field(default=5.0, description="seconds to wait for each PubAck")
    nats_max_in_flight: int = Field(
        default=256, description="publishes awaiting their ack, at most"
    )
    nats_relay_batch: int = Field(default=1000, description="log positions the relay reads at once")

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "lianhu.db"

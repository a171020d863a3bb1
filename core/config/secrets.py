"""Secrets: only from the process environment or a ``.env`` file, never from YAML.

Every value is a ``SecretStr`` so it cannot reach a log or an exception text by
accident; ``check-config`` prints them masked. ``config/.env.example`` lists them all.
"""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Secrets(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False)

    redis_url: SecretStr | None = None  # may carry a password
    database_url: SecretStr | None = None  # the trade ledger (PostgreSQL); unset: embedded SQLite
    telegram_bot_token: SecretStr | None = None
    telegram_admin_ids: str = ""  # comma-separated user ids (not secret, but environment-only)
    telegram_admin_chat_id: str = ""
    telegram_api_base: str | None = None  # self-hosted Bot API server / test fake
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    discord_bot_token: SecretStr | None = None
    discord_channel_premium: str = ""
    discord_channel_basic: str = ""
    discord_channel_free: str = ""
    discord_api_base: str | None = None
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    x_api_base: str | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_username: str | None = None
    reddit_password: SecretStr | None = None
    reddit_api_base: str | None = None
    uw_api_key: SecretStr | None = None
    uw_api_base: str | None = None
    alphavantage_api_key: SecretStr | None = None

    @field_validator("telegram_admin_ids")
    @classmethod
    def _ids(cls, v: str) -> str:
        for part in filter(None, (p.strip() for p in v.split(","))):
            if not part.lstrip("-").isdigit():
                raise ValueError("TELEGRAM_ADMIN_IDS must be comma-separated integer user ids")
        return v

    def admin_ids(self) -> frozenset[int]:
        return frozenset(int(p) for p in (s.strip() for s in self.telegram_admin_ids.split(",")) if p)

    def masked(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                out[name.upper()] = "***set***" if value.get_secret_value() else None
            else:
                out[name.upper()] = value if value not in ("", None) else None
        return out


def load_secrets(env_file: str | None = ".env") -> Secrets:
    return Secrets(_env_file=env_file)  # type: ignore[call-arg]

"""Configuration: the typed settings model, the YAML/env loader, and secrets."""

from core.config.loader import ConfigError, load_settings
from core.config.model import Settings
from core.config.secrets import Secrets, load_secrets

__all__ = ["ConfigError", "Secrets", "Settings", "load_secrets", "load_settings"]

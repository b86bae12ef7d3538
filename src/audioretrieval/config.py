"""Checks of the configuration that its JSON schema (config/schema.yaml) cannot express."""

from __future__ import annotations


class ConfigError(ValueError):
    pass


def check_config(config: dict) -> None:
    """Raise ConfigError naming the key and value of the first inconsistency."""
    demo = config.get("demo")
    if demo is not None and demo["min_duration_s"] > demo["max_duration_s"]:
        raise ConfigError(
            f"demo.min_duration_s ({demo['min_duration_s']}) must not exceed "
            f"demo.max_duration_s ({demo['max_duration_s']})"
        )

"""Shared test utilities. Composing the config lives in the package (scripts use it too)."""

from __future__ import annotations

from typing import Any

from lanas.app import ignored_keys, with_new_defaults
from lanas.checkpoint import config_diff
from lanas.config import CONF_DIR, compose_config

__all__ = ["CONF_DIR", "compose_config", "recorded_without", "resume_differences"]


def recorded_without(config: dict[str, Any], node: str, key: str) -> dict[str, Any]:
    """``config`` as a run recorded before ``key`` existed in its ``node`` (``searcher``, ``search_space``) has it."""
    return {**config, node: {k: v for k, v in config[node].items() if k != key}}


def resume_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What the resume check names between a recorded run config and today's (after today's added defaults)."""
    return config_diff(with_new_defaults(saved), current, ignored_keys(current))

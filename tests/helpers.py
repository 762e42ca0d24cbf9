"""Shared test utilities. Composing the config lives in the package (scripts use it too)."""

from __future__ import annotations

from lanas.config import CONF_DIR, compose_config

__all__ = ["CONF_DIR", "compose_config"]

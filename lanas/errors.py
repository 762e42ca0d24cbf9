"""Exceptions that `run.py` turns into a one-line message and a non-zero exit."""


class LanasError(Exception):
    """Base class of errors caused by the user's input rather than by a bug."""


class ConfigError(LanasError, ValueError):
    """A configuration value is out of range or unknown."""


class InvalidArchitectureError(LanasError, ValueError):
    """An architecture string does not parse or is not in the search space."""


class BenchmarkDataError(LanasError):
    """A benchmark file is missing, truncated or corrupt."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def require_int(key: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within bounds, or a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be <= {maximum}, got {value}")
    return value


def require_float(key: str, value: object, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a float within bounds, or a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    value = float(value)
    if value != value:
        raise ConfigError(f"{key} must be a number, got nan")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be <= {maximum}, got {value}")
    return value


def require_bool(key: str, value: object) -> bool:
    """``value`` as a bool (true / false in config), or a ConfigError naming ``key``."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return bool(value)


def require_choice(key: str, value: object, allowed: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``allowed``, or a ConfigError listing them."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is unknown; allowed: {', '.join(map(str, allowed))}")
    return value  # type: ignore[return-value]

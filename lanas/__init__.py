"""LaNAS: Monte Carlo tree search over a learned partition of a NAS search space."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``lanas.optuna`` on first use (PEP 562): ``import lanas`` stays cheap and never imports Optuna."""
    if name == "optuna":
        import importlib

        return importlib.import_module("lanas.optuna")
    raise AttributeError(f"module 'lanas' has no attribute {name!r}")

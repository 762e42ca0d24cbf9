"""LaNAS: Monte Carlo tree search over a learned partition of a NAS search space."""

__version__ = "0.1.0"

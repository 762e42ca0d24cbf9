"""Execution engines: where and when evaluations run (see :mod:`lanas.engines.base`)."""

from lanas.engines.base import Engine, Finished

__all__ = ["Engine", "Finished"]

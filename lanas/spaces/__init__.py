from lanas.spaces.base import FiniteSearchSpace, SearchSpace
from lanas.spaces.nasbench201 import NASBench201Space

__all__ = ["FiniteSearchSpace", "NASBench201Space", "SearchSpace"]

from lanas.searchers.base import Searcher
from lanas.searchers.lanas import LaNAS

__all__ = ["LaNAS", "Searcher"]

from lanas.benchmarks.base import Evaluator, TabularBenchmark
from lanas.benchmarks.nasbench201 import NASBench201Benchmark

__all__ = ["Evaluator", "NASBench201Benchmark", "TabularBenchmark"]

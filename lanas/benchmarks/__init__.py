from lanas.benchmarks.base import TabularBenchmark
from lanas.benchmarks.nasbench201 import NASBench201Benchmark

__all__ = ["NASBench201Benchmark", "TabularBenchmark"]

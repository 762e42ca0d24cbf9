"""Evaluators that train networks (as opposed to the tabular benchmarks in lanas.benchmarks)."""

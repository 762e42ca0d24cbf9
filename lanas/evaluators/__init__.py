"""What an architecture is worth: the ``Evaluator`` interface (``base``) and the evaluators that train
networks (``supernet``, ``train``); the tabular benchmarks that look rewards up are in lanas.benchmarks."""

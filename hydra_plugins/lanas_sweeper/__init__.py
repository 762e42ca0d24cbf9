"""``hydra/sweeper=lanas``: tune any Hydra application with LaNAS through an Optuna study (docs/optuna.md)."""

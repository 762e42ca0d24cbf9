"""LaNASSampler against Optuna's RandomSampler and TPESampler on two small test functions.

    python -m perf.optuna_sampler                  # 20 seeds, 60 trials each
    python -m perf.optuna_sampler --seeds 5 --trials 40

``mixed``: a bowl over a float, a log-float, an integer, a stepped float and a categorical (minimum 0).
``styblinski_tang``: the 6-d Styblinski-Tang function (minimum about -235). Prints, per sampler and
function, the mean best value after ``--trials`` trials (lower is better) with its standard error,
how many seeds beat random search's best with the same seed, and the sampler's milliseconds per trial
(wall clock, on whatever else the machine is doing).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import optuna

import lanas.optuna


def mixed(trial: optuna.Trial) -> float:
    """A bowl over every kind of parameter; minimum 0 at x=1.3, lr=1e-3, n=40, q=0, opt=adam."""
    x = trial.suggest_float("x", -5, 5)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    n = trial.suggest_int("n", 1, 64)
    q = trial.suggest_float("q", 0.0, 1.0, step=0.25)
    opt = trial.suggest_categorical("opt", ["adam", "sgd", "rmsprop"])
    return (x - 1.3) ** 2 + (math.log10(lr) + 3) ** 2 + ((n - 40) / 10) ** 2 + q + {"adam": 0, "sgd": 1,
                                                                                        "rmsprop": 2}[opt]


def styblinski_tang(trial: optuna.Trial) -> float:
    """6-d Styblinski-Tang (minimum about -235 at x_i = -2.90)."""
    return sum(x**4 - 16 * x**2 + 5 * x for x in (trial.suggest_float(f"x{i}", -5, 5) for i in range(6))) / 2


FUNCTIONS: dict[str, Callable[[optuna.Trial], float]] = {"mixed": mixed, "styblinski_tang": styblinski_tang}
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "lanas": lambda seed: lanas.optuna.LaNASSampler(seed=seed, preset="lanas"),
    "lanas_plus": lambda seed: lanas.optuna.LaNASSampler(seed=seed),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.optuna_sampler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{'function':16} {'sampler':11} {'best (mean ± se)':>20} {'beats random':>12} {'ms/trial':>9}")
    for fname, objective in FUNCTIONS.items():
        best: dict[str, np.ndarray] = {}
        for sname, make in SAMPLERS.items():
            values, start = [], time.perf_counter()
            for seed in range(args.seeds):
                study = optuna.create_study(sampler=make(seed))
                study.optimize(objective, n_trials=args.trials)
                values.append(study.best_value)
            ms = (time.perf_counter() - start) / (args.seeds * args.trials) * 1e3
            best[sname] = np.array(values)
            wins = int(np.sum(best[sname] < best["random"]))
            se = best[sname].std(ddof=1) / math.sqrt(args.seeds)
            print(f"{fname:16} {sname:11} {best[sname].mean():12.3f} ± {se:5.3f} {wins:>8}/{args.seeds:<3} {ms:9.1f}",
                  flush=True)


if __name__ == "__main__":
    main()

"""Compares touchline's BG/NBD and MBG/NBD fits with lifetimes' BetaGeoFitter and
ModifiedBetaGeoFitter on the CDNOW sample.

Loads the CDNOW customer summary that lifetimes ships (2,357 customers, time in weeks), fits it
with lifetimes and with touchline's `bgnbd_fit` example, once per model, and prints both
parameter sets and log-likelihoods side by side with their relative differences, the largest
relative difference of P(alive) and of the expected purchases over every customer, and both fit
times. Then times touchline's fits on synthetic customers (1,000,000 by default).

Run with the peer-tools environment's python (`bash scripts/peers.sh` prints it):

    $(bash scripts/peers.sh | tail -1) bench/churn_compare.py [--horizon 39] [--synthetic 1000000]

The cargo build honours CARGO_TARGET_DIR when it is set.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter
from lifetimes.datasets import load_cdnow_summary

GOAL = 1e-3
PARAMS = ["r", "alpha", "a", "b"]
# (name, lifetimes' fitter, the example's --model)
MODELS = [("BG/NBD", BetaGeoFitter, "bgnbd"), ("MBG/NBD", ModifiedBetaGeoFitter, "mbgnbd")]


def run_example(workspace, args):
    """Runs the bgnbd_fit example in release mode; returns its key=value lines as a dict."""
    command = ["cargo", "run", "--quiet", "--release", "-p", "touchline-analytics",
               "--example", "bgnbd_fit", "--", *args]
    done = subprocess.run(command, cwd=workspace, env=os.environ.copy(), check=True,
                          capture_output=True, text=True)
    return dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)


def relative(ours, theirs):
    return abs(ours - theirs) / max(abs(theirs), 1e-300)


def compare_cdnow(workspace, horizon, model):
    name, fitter, flag = model
    data = load_cdnow_summary(index_col=[0])
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cdnow.csv"
        rows = Path(tmp) / "rows.csv"
        data[["frequency", "recency", "T"]].to_csv(source, index=False)

        started = time.perf_counter()
        peer = fitter().fit(data["frequency"], data["recency"], data["T"])
        peer_seconds = time.perf_counter() - started
        peer_alive = peer.conditional_probability_alive(data["frequency"], data["recency"], data["T"])
        peer_expected = peer.conditional_expected_number_of_purchases_up_to_time(
            horizon, data["frequency"], data["recency"], data["T"])

        ours = run_example(workspace, [str(source), str(rows), "--model", flag,
                                       "--horizon", str(horizon)])
        table = np.loadtxt(rows, delimiter=",", skiprows=1, ndmin=2)

    print(f"\n{name} on the CDNOW summary: {len(data)} customers (weeks); "
          f"lifetimes' {fitter.__name__}")
    print(f"{'':>16}{'touchline':>18}{'lifetimes':>18}{'rel. diff':>12}")
    worst = 0.0
    for name in PARAMS:
        mine, theirs = float(ours[name]), float(peer.params_[name])
        worst = max(worst, relative(mine, theirs))
        print(f"{name:>16}{mine:>18.9f}{theirs:>18.9f}{relative(mine, theirs):>12.2e}")
    # lifetimes reports its optimum on internally rescaled time; evaluate its parameters on the
    # data as given, so both log-likelihoods are in the same units.
    peer_log_params = np.log(np.array([peer.params_[name] for name in PARAMS]))
    peer_ll = -fitter._negative_log_likelihood(
        peer_log_params, data["frequency"].to_numpy(), data["recency"].to_numpy(),
        data["T"].to_numpy(), np.ones(len(data)), 0.0) * len(data)
    ll = float(ours["log_likelihood"])
    print(f"{'log-likelihood':>16}{ll:>18.6f}{peer_ll:>18.6f}{relative(ll, peer_ll):>12.2e}")
    alive_diff = np.max(np.abs(table[:, 0] - peer_alive) / np.abs(peer_alive))
    expected_diff = np.max(np.abs(table[:, 1] - peer_expected) / np.maximum(np.abs(peer_expected), 1e-300))
    print(f"max rel. diff of P(alive) over all customers: {alive_diff:.2e}")
    print(f"max rel. diff of expected purchases in the next {horizon:g} weeks: {expected_diff:.2e}")
    print(f"fit time: touchline {float(ours['fit_seconds']) * 1e3:.2f} ms "
          f"({ours['iterations']} iterations, converged={ours['converged']}), "
          f"lifetimes {peer_seconds * 1e3:.2f} ms")
    verdict = "met" if max(worst, alive_diff) <= GOAL else "NOT met"
    print(f"goal (parameters and P(alive) within {GOAL:g} relative): {verdict}")
    one_time = data["frequency"].to_numpy() == 0
    print(f"mean churn score of the {one_time.sum()} one-time buyers: "
          f"{np.mean(1.0 - table[one_time, 0]):.4f}, of the {(~one_time).sum()} others: "
          f"{np.mean(1.0 - table[~one_time, 0]):.4f}")
    return max(worst, alive_diff) <= GOAL


def time_synthetic(workspace, count, threads, model):
    name, _, flag = model
    ours = run_example(workspace, ["-", "-", "--model", flag, "--synthetic", str(count),
                                   "--threads", str(threads)])
    print(f"{name} synthetic fit, {count} customers, {threads} thread(s): "
          f"{float(ours['fit_seconds']):.3f} s "
          f"({ours['iterations']} iterations, converged={ours['converged']}, "
          f"log-likelihood {float(ours['log_likelihood']):.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=float, default=39.0, help="forecast horizon in weeks")
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="customers for the timing fit")
    parser.add_argument("--workspace", default=str(Path(__file__).resolve().parent.parent),
                        help="the cargo workspace to build the example in")
    args = parser.parse_args()
    ok = all([compare_cdnow(args.workspace, args.horizon, model) for model in MODELS])
    print()
    for model in MODELS:
        for threads in (1, 2):
            time_synthetic(args.workspace, args.synthetic, threads, model)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

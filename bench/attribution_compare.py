"""Compares touchline's attribution with ChannelAttribution on the same path file.

Writes (or reads) a path file in the `path;conversions;value;nulls` layout, runs
ChannelAttribution's `markov_model` (orders 1 and 3, its defaults otherwise) and
`heuristic_models` on it, runs touchline's `attribution_paths` example on the same file, and
prints side by side the conversions each credits to every channel, the difference as a
percentage of all conversions, and the timings of both. touchline's timings include parsing the
text; ChannelAttribution's exclude reading the file into a DataFrame.

Run with the peer-tools environment's python (`bash scripts/peers.sh` prints it):

    $(bash scripts/peers.sh | tail -1) bench/attribution_compare.py [--file paths.csv]
        [--journeys 1000000] [--seed 7] [--runs 3] [--binary path/to/attribution_paths]

Without --file a realistic file (1 M journeys, about 135,000 distinct paths over 12 channels)
is generated with the example's seeded generator. Without --binary the example is built with
cargo in release mode (CARGO_TARGET_DIR is honoured).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pandas as pd

# ChannelAttribution imports matplotlib for its plots only; none are drawn here.
for _name in ("matplotlib", "matplotlib.pyplot"):
    sys.modules.setdefault(_name, types.ModuleType(_name))
sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
import ChannelAttribution as ca  # noqa: E402

WORKSPACE = Path(__file__).resolve().parent.parent
COMPARED = [
    ("markov_1", "markov order 1"),
    ("markov_3", "markov order 3"),
    ("first_touch", "first touch"),
    ("last_touch", "last touch"),
    ("linear", "linear"),
]
# The goals, as % of total conversions: ChannelAttribution's Markov simulates, so it is
# accurate to about 0.3 % of conversions, and a 1 % gap would be ours; the heuristics are
# arithmetic on the same paths, so both must give the same numbers up to rounding; the
# service must give what the library gives in process.
GOALS = {"markov_1": 1.0, "markov_3": 1.0, "first_touch": 1e-6, "last_touch": 1e-6,
         "linear": 1e-6}
RPC_GOAL = 1e-9


def example_binary(given):
    """The example's binary: the given one, or a fresh release build."""
    if given:
        return given
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "touchline-analytics",
                    "--example", "attribution_paths"], cwd=WORKSPACE, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
    return str(target / "release" / "examples" / "attribution_paths")


def read_tsv(output, credits, timings):
    """Folds the `result` and `timing` lines of one run's output into the two dicts."""
    for line in output.splitlines():
        kind, *fields = line.split("\t")
        if kind == "result":
            model, channel, conversions, _value = fields
            credits[(model, channel)] = float(conversions)
        elif kind == "timing":
            timings.setdefault(fields[0], []).append(float(fields[1]))


def run_touchline(binary, path_file, runs):
    """Runs the example `runs` times; returns its credits and every run's timings."""
    credits, timings = {}, {}
    for _ in range(runs):
        done = subprocess.run([binary, "run", path_file, "--tsv"], check=True,
                              capture_output=True, text=True)
        read_tsv(done.stdout, credits, timings)
    return credits, timings


def rpc_binary(given):
    """The attribution-rpc benchmark binary: the given one, or a fresh release build."""
    if given:
        return given
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "touchline-e2e", "--bin",
                    "attribution-rpc"], cwd=WORKSPACE, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
    return str(target / "release" / "attribution-rpc")


def run_rpc(binary, path_file, runs):
    """Runs the RPC benchmark; returns its credits and every call's timings."""
    credits, timings = {}, {}
    done = subprocess.run([binary, path_file, str(runs)], check=True, capture_output=True,
                          text=True, cwd=WORKSPACE)
    read_tsv(done.stdout, credits, timings)
    return credits, timings


def run_channel_attribution(path_file):
    """Runs ChannelAttribution; returns its credits and timings in milliseconds."""
    data = pd.read_csv(path_file, sep=";")
    credits, timings = {}, {}
    for order in (1, 3):
        start = time.perf_counter()
        result = ca.markov_model(data, "path", "conversions", var_value="value",
                                 var_null="nulls", order=order, verbose=False, flg_pro=False)
        timings[f"markov_{order}"] = (time.perf_counter() - start) * 1000
        for row in result.itertuples():
            credits[(f"markov_{order}", row.channel_name)] = row.total_conversions
    start = time.perf_counter()
    heuristics = ca.heuristic_models(data, "path", "conversions", var_value="value",
                                     flg_pro=False)
    timings["heuristics"] = (time.perf_counter() - start) * 1000
    for row in heuristics.itertuples():
        credits[("first_touch", row.channel_name)] = row.first_touch_conversions
        credits[("last_touch", row.channel_name)] = row.last_touch_conversions
        credits[("linear", row.channel_name)] = row.linear_touch_conversions
    return credits, timings, float(data["conversions"].sum())


def print_comparison(ours, theirs, total):
    """Per model and channel: both credits and the difference as % of all conversions."""
    channels = sorted({channel for (_, channel) in ours})
    worst = {}
    for model, title in COMPARED:
        print(f"\n{title}: conversions per channel (total {total:,.0f})")
        print(f"  {'channel':<16}{'ChannelAttribution':>20}{'touchline':>14}{'diff % of total':>18}")
        for channel in channels:
            mine = ours.get((model, channel), 0.0)
            peer = theirs.get((model, channel), 0.0)
            diff = (mine - peer) / total * 100 if total else 0.0
            worst[model] = max(worst.get(model, 0.0), abs(diff))
            print(f"  {channel:<16}{peer:>20.2f}{mine:>14.2f}{diff:>+17.3f}%")
    print("\nlargest |difference| as % of total conversions:")
    for model, title in COMPARED:
        print(f"  {title:<16}{worst[model]:.3f}%  (goal: at most {GOALS[model]:g}%)")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="an existing path file; default: generate one")
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3, help="touchline runs (timings: best, median)")
    parser.add_argument("--binary", help="a built attribution_paths example to use")
    parser.add_argument("--rpc-binary", help="a built attribution-rpc benchmark binary to use")
    parser.add_argument("--no-rpc", action="store_true",
                        help="skip the run through the service (it needs PostgreSQL)")
    args = parser.parse_args()

    binary = example_binary(args.binary)
    with tempfile.TemporaryDirectory() as scratch:
        path_file = args.file
        if not path_file:
            path_file = str(Path(scratch) / "paths.csv")
            subprocess.run([binary, "generate", path_file, "--journeys", str(args.journeys),
                            "--seed", str(args.seed)], check=True)
        lines = sum(1 for _ in open(path_file, encoding="utf-8")) - 1
        print(f"path file: {lines:,} distinct paths")
        ours, our_timings = run_touchline(binary, path_file, args.runs)
        rpc, rpc_timings = ({}, {}) if args.no_rpc else run_rpc(
            rpc_binary(args.rpc_binary), path_file, args.runs)
        theirs, their_timings, total = run_channel_attribution(path_file)

    worst = print_comparison(ours, theirs, total)
    missed = [f"{title}: {worst[model]:.3g}% of conversions from ChannelAttribution, over"
              f" {GOALS[model]:g}%" for model, title in COMPARED if worst[model] > GOALS[model]]
    if rpc:
        print("\nthrough RunAttributionOnPaths: largest |difference| from the in-process run,"
              " as % of total conversions:")
        for model, title in COMPARED:
            diff = max(abs(rpc.get((m, c), 0.0) - v) for (m, c), v in ours.items() if m == model)
            share = diff / total * 100 if total else 0.0
            print(f"  {title:<16}{share:.2e}%")
            if share > RPC_GOAL:
                missed.append(f"{title}: the service differs from the library by {share:.2e}%")
    print("\ntimings (ms)            ChannelAttribution   touchline best / median (incl. parse)")
    for step, ours_key in (("markov_1", "markov_1_with_parse"), ("markov_3", "markov_3_with_parse"),
                           ("heuristics", "heuristics_with_parse")):
        runs = our_timings[ours_key]
        best, median = min(runs), statistics.median(runs)
        speedup = their_timings[step] / best if best else float("inf")
        print(f"  {step:<22}{their_timings[step]:>18.1f}   {best:>9.1f} / {median:<9.1f}"
              f"  ({speedup:.0f}x)")
    if rpc_timings:
        print("\ntimings (ms)            ChannelAttribution   RunAttributionOnPaths best / median"
              " (send, parse, models, reply)")
        for step in ("markov_1", "markov_3", "heuristics"):
            runs = rpc_timings[f"{step}_rpc"]
            best, median = min(runs), statistics.median(runs)
            speedup = their_timings[step] / best if best else float("inf")
            print(f"  {step:<22}{their_timings[step]:>18.1f}   {best:>9.1f} / {median:<9.1f}"
                  f"  ({speedup:.1f}x)")
    parse = our_timings["parse"]
    print(f"  touchline parse alone: best {min(parse):.1f} ms, median {statistics.median(parse):.1f} ms")
    print(f"  load average while running: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if missed:
        print("\nMISSED / 未达标:\n  " + "\n  ".join(missed))
        sys.exit(1)
    print("\nevery credit within its goal / 各模型结果均在目标范围内")


if __name__ == "__main__":
    main()

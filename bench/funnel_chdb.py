"""Peer comparison for the funnel model: ClickHouse's windowFunnel (through chdb) against
touchline's ordered funnel, on the same synthetic events, both on 2 threads.

Runs the Rust example `funnel_bench` to generate the data set (written as CSV) and time our
funnel, loads the CSV into chdb, times the equivalent windowFunnel query, and prints both
medians and both sets of step counts.

    python bench/funnel_chdb.py [--seed 42] [--persons 1000000] [--runs 7] [--csv PATH]

Run it from the repository root with the peer-tools environment's python (scripts/peers.sh
prints its path). The funnel: event codes 0, 1, 2, 3 in order within 14 days, time in ms.
windowFunnel lets events of equal timestamps fill consecutive steps where touchline does not;
with millisecond timestamps such ties are rare, so the counts should agree or nearly so.
"""

import argparse
import re
import statistics
import subprocess
import time

import chdb.session

WINDOW_MS = 14 * 24 * 3600 * 1000


def run_ours(args):
    """Generates the CSV and times our funnel; returns (median ms, counts) without breakdown."""
    command = [
        "cargo", "run", "--quiet", "--release", "-p", "touchline-analytics",
        "--example", "funnel_bench", "--",
        "--seed", str(args.seed), "--persons", str(args.persons),
        "--runs", str(args.runs), "--threads", "2", "--csv", args.csv,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    print(output.strip())
    line = next(l for l in output.splitlines() if l.startswith("ordered") and "breakdown none" in l)
    median = float(re.search(r"median ([0-9.]+) ms", line).group(1))
    counts = [int(c) for c in re.search(r"counts \[([0-9, ]+)\]", line).group(1).split(",")]
    return median, counts


def run_chdb(args):
    """Loads the CSV and times windowFunnel; returns (median ms, counts)."""
    session = chdb.session.Session()
    session.query("CREATE DATABASE IF NOT EXISTS bench")
    session.query("DROP TABLE IF EXISTS bench.events")
    session.query(
        "CREATE TABLE bench.events (person UInt32, time UInt64, event UInt8) "
        "ENGINE = MergeTree ORDER BY (person, time)"
    )
    started = time.perf_counter()
    session.query(
        "INSERT INTO bench.events SELECT * FROM file('{}', 'CSVWithNames', "
        "'person UInt32, time UInt64, event UInt8')".format(args.csv)
    )
    print("chdb: loaded the CSV in {:.1f} s".format(time.perf_counter() - started))
    query = (
        "SELECT level, count() FROM ("
        " SELECT person, windowFunnel({})(time, event = 0, event = 1, event = 2, event = 3)"
        " AS level FROM bench.events GROUP BY person)"
        " GROUP BY level ORDER BY level SETTINGS max_threads = 2"
    ).format(WINDOW_MS)
    timings = []
    result = ""
    for _ in range(args.runs):
        started = time.perf_counter()
        result = str(session.query(query, "CSV"))
        timings.append((time.perf_counter() - started) * 1000)
    persons_at_level = {}
    for row in result.strip().splitlines():
        level, persons = row.split(",")
        persons_at_level[int(level)] = int(persons)
    counts = [sum(n for level, n in persons_at_level.items() if level >= k) for k in range(1, 5)]
    return statistics.median(timings), counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--csv", default="target/funnel_events.csv")
    args = parser.parse_args()
    ours_ms, ours_counts = run_ours(args)
    chdb_ms, chdb_counts = run_chdb(args)
    print("touchline ordered funnel: median {:.1f} ms, counts {}".format(ours_ms, ours_counts))
    print("chdb windowFunnel:        median {:.1f} ms, counts {}".format(chdb_ms, chdb_counts))


if __name__ == "__main__":
    main()

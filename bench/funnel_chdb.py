"""Peer comparison for the funnel model: ClickHouse's windowFunnel (through chdb) against
touchline's ordered funnel, on the same synthetic events, both on 2 threads.

Two comparisons on 2 threads each, the same events for both engines in each:

1. the model alone: the Rust example `funnel_bench` generates the data set (written as CSV)
   and times our funnel on pre-built person batches; chdb loads the CSV and times the
   equivalent windowFunnel;
2. as the service runs it: the example `projection_bench` builds the in-memory projection
   (appends and identity changes included), times the funnel broken down by first-touch
   channel over it and writes the events it read; chdb times windowFunnel with the same
   first-touch channel breakdown (argMinIf) on them.

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


def time_query(session, query, runs):
    """Runs `query` `runs` times; returns (median ms, the last result as CSV text)."""
    timings = []
    result = ""
    for _ in range(runs):
        started = time.perf_counter()
        result = str(session.query(query, "CSV"))
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


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
    median, result = time_query(session, query, args.runs)
    persons_at_level = {}
    for row in result.strip().splitlines():
        level, persons = row.split(",")
        persons_at_level[int(level)] = int(persons)
    counts = [sum(n for level, n in persons_at_level.items() if level >= k) for k in range(1, 5)]
    return median, counts


def run_projection(args):
    """Times our by-channel funnel over the projection and writes its events; returns
    (median ms, counts)."""
    command = [
        "cargo", "run", "--quiet", "--release", "-p", "touchline-projection",
        "--example", "projection_bench", "--",
        "--seed", str(args.seed), "--persons", str(args.persons), "--runs", str(args.runs),
        "--threads", "2", "--only", "funnel", "--csv", args.projection_csv,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    print(output.strip())
    line = next(l for l in output.splitlines() if "by channel" in l)
    median = float(re.search(r"median ([0-9.]+) ms", line).group(1))
    counts = [int(c) for c in re.search(r"counts \[([0-9, ]+)\]", line).group(1).split(",")]
    return median, counts


def run_chdb_by_channel(args):
    """windowFunnel with a first-touch channel breakdown over the projection's events;
    returns (median ms, counts)."""
    session = chdb.session.Session()
    session.query("CREATE DATABASE IF NOT EXISTS bench")
    session.query("DROP TABLE IF EXISTS bench.projected")
    session.query(
        "CREATE TABLE bench.projected (person UInt64, time UInt64, seq UInt64, event UInt16, "
        "channel UInt32) ENGINE = MergeTree ORDER BY (person, time, seq)"
    )
    session.query(
        "INSERT INTO bench.projected SELECT * FROM file('{}', 'CSVWithNames', "
        "'person UInt64, time UInt64, seq UInt64, event UInt16, channel UInt32')".format(
            args.projection_csv
        )
    )
    # Steps are event codes 1 to 4; the first-touch channel is the earliest non-missing
    # channel among the person's step events, as touchline attributes it.
    query = (
        "SELECT channel, level, count() FROM ("
        " SELECT person,"
        "  argMinIf(channel, (time, seq), event IN (1, 2, 3, 4) AND channel != 0) AS channel,"
        "  windowFunnel({})(time, event = 1, event = 2, event = 3, event = 4) AS level"
        " FROM bench.projected GROUP BY person)"
        " GROUP BY channel, level ORDER BY channel, level SETTINGS max_threads = 2"
    ).format(WINDOW_MS)
    median, result = time_query(session, query, args.runs)
    persons_at_level = {}
    for row in result.strip().splitlines():
        _, level, persons = row.split(",")
        persons_at_level[int(level)] = persons_at_level.get(int(level), 0) + int(persons)
    counts = [sum(n for level, n in persons_at_level.items() if level >= k) for k in range(1, 5)]
    return median, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--csv", default="target/funnel_events.csv")
    parser.add_argument("--projection-csv", default="target/projection_events.csv")
    args = parser.parse_args()
    ours_ms, ours_counts = run_ours(args)
    chdb_ms, chdb_counts = run_chdb(args)
    print("touchline ordered funnel: median {:.1f} ms, counts {}".format(ours_ms, ours_counts))
    print("chdb windowFunnel:        median {:.1f} ms, counts {}".format(chdb_ms, chdb_counts))
    projected_ms, projected_counts = run_projection(args)
    chdb_by_channel_ms, chdb_by_channel_counts = run_chdb_by_channel(args)
    print(
        "touchline projection funnel by channel: median {:.1f} ms, counts {}".format(
            projected_ms, projected_counts
        )
    )
    print(
        "chdb windowFunnel by channel:           median {:.1f} ms, counts {}  ({:.1f}x ours)".format(
            chdb_by_channel_ms, chdb_by_channel_counts, chdb_by_channel_ms / projected_ms
        )
    )


if __name__ == "__main__":
    main()

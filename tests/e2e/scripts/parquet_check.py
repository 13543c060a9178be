#!/usr/bin/env python3
"""The ScoringJob test's Parquet side, with pyarrow.

convert DATA.csv OUT.parquet: the CSV as Parquet in row groups of 10,000
rows, columns typed as pyarrow infers them (a column holding a word becomes
text, so its malformed row stays malformed); numbers as doubles.

compare CSV_DIR PARQUET_DIR COLUMN...: every row of the Parquet parts once,
and for each COLUMN the same value (to float32) as in the CSV parts, by id;
prints {"rows": N, "compared": M} as JSON.
"""

import csv
import glob
import json
import os
import struct
import sys

import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def convert(source, target):
    # One block, so that types are inferred from every row.
    table = pacsv.read_csv(source, read_options=pacsv.ReadOptions(block_size=1 << 30))
    pq.write_table(table, target, row_group_size=10_000)


def f32(value):
    """`value` rounded to single precision."""
    return struct.unpack("f", struct.pack("f", value))[0]


def compare(csv_dir, parquet_dir, columns):
    expected = {}
    for part in sorted(glob.glob(os.path.join(csv_dir, "part-*.csv"))):
        with open(part, newline="") as f:
            for row in csv.DictReader(f):
                expected[row["id"]] = row
    seen = set()
    compared = 0
    for part in sorted(glob.glob(os.path.join(parquet_dir, "part-*.parquet"))):
        table = pq.read_table(part).to_pylist()
        for row in table:
            if row["id"] in seen:
                sys.exit(f"row {row['id']} twice")
            seen.add(row["id"])
            want = expected[row["id"]]
            for column in columns:
                got, text = row[column], want[column]
                if text == "":
                    if got is not None:
                        sys.exit(f"{row['id']} {column}: {got} where the CSV run refused")
                    continue
                if f32(got) != f32(float(text)):
                    sys.exit(f"{row['id']} {column}: {got} vs {text}")
                compared += 1
            if (row.get("v2.refused") or "") != want["v2.refused"]:
                sys.exit(f"{row['id']}: refused {row.get('v2.refused')!r} vs {want['v2.refused']!r}")
    if seen != set(expected):
        sys.exit(f"{len(seen)} rows in the Parquet parts, {len(expected)} in the CSV ones")
    print(json.dumps({"rows": len(seen), "compared": compared}))


if __name__ == "__main__":
    if sys.argv[1] == "convert":
        convert(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2], sys.argv[3], sys.argv[4:])

"""Reads a registry Parquet export back with DuckDB (an independent reader) and checks it against
the data dictionary: every column present, in order, with the dictionary's type, and the row
count. Usage: parquet_check.py EXPORT.parquet DICTIONARY.csv ROWS. Prints what it read."""

import csv
import sys

import duckdb

DUCK = {"string": "VARCHAR", "integer": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}


def main() -> int:
    path, dictionary, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(dictionary, newline="") as f:
        want = [(r["column"], DUCK[r["type"]]) for r in csv.DictReader(f)]
    con = duckdb.connect()
    got = [
        (name, kind)
        for name, kind, *_ in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [path]
        ).fetchall()
    ]
    if got != want:
        print(f"columns differ:\n got  {got}\n want {want}", file=sys.stderr)
        return 1
    n = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0]
    if n != rows:
        print(f"{n} rows, expected {rows}", file=sys.stderr)
        return 1
    print(f"duckdb {duckdb.__version__}: {n} rows, {len(got)} columns as the dictionary types them")
    return 0


if __name__ == "__main__":
    sys.exit(main())

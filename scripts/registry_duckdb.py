"""The registry's cohort outcome table computed by DuckDB from the Parquet export (the
benchmark's comparison: `ketcare bench registry --duckdb PYTHON`). Prints the counts (to compare
with ketcare's table) and the time of the query, best of three, the file read included."""

import sys
import time

import duckdb

QUERY = """
SELECT count(*) AS subjects,
       count(*) FILTER (WHERE induction_completed) AS induction_k,
       count(induction_completed) AS induction_n,
       count(*) FILTER (WHERE response) AS response_k,
       count(response) AS response_n,
       count(*) FILTER (WHERE remission) AS remission_k,
       count(remission) AS remission_n,
       quantile_cont(sessions, 0.5) AS median_sessions,
       quantile_cont(max_systolic_rise, [0.25, 0.5, 0.75]) AS systolic_rise,
       quantile_cont(maintenance_interval_days, [0.25, 0.5, 0.75]) AS maintenance
FROM read_parquet(?)
"""

# Response by tertile of the induction's mean predicted Cmax: the cut points are the 1/3 and 2/3
# sample quantiles (quantile_cont, definition 7), a value at a cut point in the lower tertile.
TERTILES = """
WITH x AS (
    SELECT induction_cmax_ng_ml AS v, response FROM read_parquet(?)
    WHERE induction_cmax_ng_ml IS NOT NULL AND response IS NOT NULL
), c AS (SELECT quantile_cont(v, [1/3, 2/3]) AS q FROM x)
SELECT c.q[1], c.q[2],
       count(*) FILTER (WHERE v <= c.q[1]), count(*) FILTER (WHERE v <= c.q[1] AND response),
       count(*) FILTER (WHERE v > c.q[1] AND v <= c.q[2]),
       count(*) FILTER (WHERE v > c.q[1] AND v <= c.q[2] AND response),
       count(*) FILTER (WHERE v > c.q[2]), count(*) FILTER (WHERE v > c.q[2] AND response)
FROM x, c GROUP BY c.q
"""


def main() -> int:
    path = sys.argv[1]
    con = duckdb.connect()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        row = con.execute(QUERY, [path]).fetchone()
        times.append(time.perf_counter() - t0)
    (n, ik, inn, rk, rn, mk, mn, med, _, _) = row
    print(
        f"duckdb {duckdb.__version__} from the parquet export: best {min(times):.3f} s — "
        f"subjects {n}, induction completed {ik}/{inn}, response {rk}/{rn}, "
        f"remission {mk}/{mn}, median sessions {med}"
    )
    t = con.execute(TERTILES, [path]).fetchone()
    if t is not None:
        a, b, n1, k1, n2, k2, n3, k3 = t
        print(
            f"duckdb response by predicted Cmax tertile (cuts {a:.1f}, {b:.1f} ng/mL): "
            f"{k1}/{n1}, {k2}/{n2}, {k3}/{n3}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The single-machine anchor of `deno task bench:batch --duckdb` (issue 18).

Raw DuckDB on the same hour's Parquet files as the batch job, doing only what
the job's read and compute phases do for the bench plan's three metrics
(tests/_support/batch.ts testPlan): read the hour's lake files, deduplicate
on (Kafka partition, offset), and the three sums of `bytes` grouped by
antenna_id, by app and by email. The email metric needs the device -> email
join, so the users are loaded first (untimed: the job's own users phase is
reported apart too) and joined with the `unknown_id` policy the bench plan
uses (a device without metadata counts under the placeholder). No quota, no
reconciliation, nothing written anywhere.

usage: python duckdb_hour.py HOUR_DIR USERS_CSV THREADS RUNS
Prints one JSON object: DuckDB's version, threads, rows after dedupe, the
groups of each metric, the sum of bytes, and the seconds of each run.
"""

import json
import sys
import time

import duckdb

hour_dir, users_csv, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

con = duckdb.connect(":memory:", config={"threads": threads})
con.execute(
    "CREATE TABLE users AS SELECT * FROM read_csv(?, header = true, "
    "columns = {'id': 'VARCHAR', 'email': 'VARCHAR'})",
    [users_csv],
)

# Only the lake's own segment files, as the job's reader lists them.
GLOB = hour_dir.rstrip("/") + "/part-p*.parquet"
QUERIES = {
    "dedupe": (
        "CREATE OR REPLACE TEMP TABLE events AS "
        "SELECT DISTINCT ON (\"partition\", \"offset\") id, antenna_id, app, bytes "
        "FROM read_parquet(?)"
    ),
    "antenna_bytes_total": (
        "CREATE OR REPLACE TEMP TABLE m_antenna AS "
        "SELECT antenna_id AS k, CAST(sum(bytes) AS BIGINT) AS v FROM events GROUP BY antenna_id"
    ),
    "app_bytes_total": (
        "CREATE OR REPLACE TEMP TABLE m_app AS "
        "SELECT app AS k, CAST(sum(bytes) AS BIGINT) AS v FROM events GROUP BY app"
    ),
    "email_bytes_total": (
        "CREATE OR REPLACE TEMP TABLE m_email AS "
        "SELECT COALESCE(u.email, 'unknown') AS k, CAST(sum(e.bytes) AS BIGINT) AS v "
        "FROM events e LEFT JOIN users u ON e.id = u.id GROUP BY 1"
    ),
}

seconds = []
for _ in range(runs):
    t = time.perf_counter()
    for name, sql in QUERIES.items():
        con.execute(sql, [GLOB] if name == "dedupe" else [])
    seconds.append(time.perf_counter() - t)

one = lambda sql: con.execute(sql).fetchone()[0]
print(json.dumps({
    "version": duckdb.__version__,
    "threads": one("SELECT current_setting('threads')"),
    "rows": one("SELECT count(*) FROM events"),
    "groups": {
        "antenna_bytes_total": one("SELECT count(*) FROM m_antenna"),
        "app_bytes_total": one("SELECT count(*) FROM m_app"),
        "email_bytes_total": one("SELECT count(*) FROM m_email"),
    },
    "bytes": [one(f"SELECT sum(v) FROM {t}") for t in ("m_antenna", "m_app", "m_email")],
    "seconds": seconds,
}))

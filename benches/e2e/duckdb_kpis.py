"""Runs orderpulse's KPI library in DuckDB over a Delta lake's Parquet files.

The same `.sql` files as orderpulse: the views in `queries/views/` first, then each KPI
with its named parameters bound as values ($merchant, $from, $to, $group_by). One
mechanical dialect step (`duckdb_dialect`): the ordered aggregates `first_value(` and
`last_value(` are DuckDB's `first(` and `last(`. The only set-up is DuckDB's session
time zone (UTC), so dates and weeks are cut where orderpulse cuts them. Tables are read
from the files of each table's current Delta snapshot (as `deltalake` lists them), with
the `event_date` partition column from the Hive-style paths.

usage: duckdb_kpis.py LAKE QUERIES RUNS_JSON
  RUNS_JSON: [{"kpi": name, "merchant": str|null, "from": rfc3339, "to": rfc3339,
               "group_by": str}, ...]
prints: [{"kpi", "group_by", "merchant", "seconds", "columns", "rows"}, ...] as JSON
"""

import datetime
import json
import os
import pathlib
import re
import sys
import time

import duckdb
from deltalake import DeltaTable

TABLES = ["order_events", "carrier_events", "ticket_events"]


def duckdb_dialect(sql: str) -> str:
    """DataFusion's ordered aggregates `first_value(x ORDER BY ...)` / `last_value(...)`
    under DuckDB's names `first` / `last` (the library uses them only as aggregates)."""
    return re.sub(r"\b(first|last)_value\(", r"\1(", sql)


def connect(lake: str, queries: pathlib.Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES:
        files = DeltaTable(f"{lake}/{table}").file_uris()
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files!r}, hive_partitioning = true)")
    for view in sorted((queries / "views").glob("*.sql")):
        con.execute(duckdb_dialect(view.read_text()))
    return con


def instant(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def plain(value):
    """JSON-friendly values: dates as ISO text, decimals and big integers as numbers."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, int):
        return value
    try:
        return float(value) if value is not None and not isinstance(value, str) else value
    except (TypeError, ValueError):
        return str(value)


def run_kpi(con: duckdb.DuckDBPyConnection, queries: pathlib.Path, run: dict) -> dict:
    """Runs one KPI of `queries` with the parameters of `run`; returns `run` with the
    query's seconds (execution and fetching the rows), columns and rows."""
    sql = duckdb_dialect((queries / f"{run['kpi']}.sql").read_text())
    params = {"merchant": run["merchant"], "from": instant(run["from"]), "to": instant(run["to"]), "group_by": run["group_by"]}
    started = time.perf_counter()
    cursor = con.execute(sql, params)
    rows = cursor.fetchall()
    seconds = time.perf_counter() - started
    columns = [d[0] for d in cursor.description]
    return {**run, "seconds": seconds, "columns": columns, "rows": [[plain(v) for v in row] for row in rows]}


def main() -> None:
    lake, queries, runs = sys.argv[1], pathlib.Path(sys.argv[2]), json.loads(sys.argv[3])
    con = connect(lake, queries)
    print(json.dumps([run_kpi(con, queries, run) for run in runs]))
    sys.stdout.flush()
    # deltalake's native threads can abort at interpreter exit; the work is done.
    os._exit(0)


if __name__ == "__main__":
    main()

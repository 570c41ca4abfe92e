#!/usr/bin/env python3
"""Counts the WAL frames (pages) that real payments write, by replaying their statements.

Load runs on this machine vary by 10-20 % from run to run; the pages a payment writes do
not. This replays the exact statements facture ran for a few payments (taken from its SQL
trace) on a copy of a large database, with SQLite's automatic checkpoint off, and counts the
WAL frames each transaction appends. It then replays them again in two variations:
time-ordered ids in place of the trace's random UUIDs, and each step of every payment
grouped in one transaction (what a group commit for the pipeline would write).

1. Record a trace of N payments made one at a time (10/s, each finishes before the next):
     FACTURE_LOG=warn,facture_sql=trace facture serve 2> trace.log   # SQLite, file mail
     facture loadgen --orders 3 --rate 10 --concurrency 1
   and keep that server's database (SMALL) beside the trace.
2. Take a large database (BIG), for example the one a 60 s `benches/run.sh` run leaves.
3. python3 benches/replay_frames.py --trace trace.log --small SMALL --big BIG

BIG is copied, never changed. Prints the frames written per transaction and in total.
"""
import argparse
import ast
import os
import re
import shutil
import sqlite3
import tempfile

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TYPED = re.compile(
    r'String\(("(?:[^"\\]|\\.)*")\)|I32\((-?\d+)\)|I64\((-?\d+)\)|(Null)|Bool\((true|false)\)'
)


def rust_string(literal):
    """A Rust debug string literal as Python text (`\\u{a0}` escapes included)."""
    literal = re.sub(r"\\u\{([0-9a-f]+)\}", lambda m: chr(int(m.group(1), 16)), literal)
    return ast.literal_eval(literal)


def binds_of(text):
    """The bound values of one traced statement, from diesel's two debug formats."""
    if text.startswith('["'):  # the blocking connection's format (the acknowledgement)
        text = re.sub(r"(\d{4}-\d\d-\d\dT[\d:.]+)", r'"\1"', text)
        return ast.literal_eval(text.replace("Some(", "").replace(")]", "]"))
    values = []
    for m in TYPED.finditer(text):
        string, i32, i64, null, boolean = m.groups()
        if string is not None:
            values.append(rust_string(string))
        elif i32 is not None or i64 is not None:
            values.append(int(i32 or i64))
        elif null:
            values.append(None)
        else:
            values.append(boolean == "true")
    return values


def transactions(trace):
    """Every BEGIN IMMEDIATE ... COMMIT of the trace, as lists of (sql, binds)."""
    txs, current = [], None
    for raw in open(trace, encoding="utf-8"):
        line = ESCAPE.sub("", raw.rstrip("\n"))
        if "facture_sql: " not in line:
            continue
        line = line.split("facture_sql: ", 1)[1]
        sql, _, binds = line.partition(" -- binds: ")
        sql = sql.replace("`", '"')
        if sql.startswith("BEGIN"):
            current = []
        elif sql == "COMMIT" and current is not None:
            txs.append(current)
            current = None
        elif current is not None:
            values = binds_of(binds) if binds else []
            if sql.startswith('INSERT INTO "invoices"'):
                # The large database has numbered invoices already: keep both unique.
                values[2] = "X" + values[2]  # number
                values[4] += 10**9  # sequence
            current.append((sql, values))
    return txs


def replay(args, txs, per_order, ordered_ids, grouped):
    work = tempfile.mkdtemp(prefix="replay-frames-")
    db = os.path.join(work, "big.db")
    shutil.copy(args.big, db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA foreign_keys = ON")
    names, count = {}, [0]

    def value(v):
        if ordered_ids and isinstance(v, str) and UUID.match(v):
            if v not in names:
                count[0] += 1
                names[v] = "ffffffff-0000-7000-8000-%012d" % count[0]
            return names[v]
        return v

    # The payments' customers and unpaid orders, as they were before the payments.
    small = sqlite3.connect(args.small)
    small.row_factory = sqlite3.Row
    for order in small.execute("SELECT * FROM commandes ORDER BY stripe_session_id"):
        order = dict(order)
        user = dict(small.execute("SELECT * FROM users WHERE id = ?", (order["user_id"],)).fetchone())
        order.update(pipeline=None, payment_status="unpaid", paid_at=None, lease_owner=None,
                     lease_expires_at=None, stripe_payment_intent=None)
        for table, row in (("users", user), ("commandes", order)):
            conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         [value(v) for v in row.values()])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def frames():
        return max(os.path.getsize(db + "-wal") - 32, 0) // (4096 + 24)

    orders = len(txs) // per_order
    if grouped:  # step k of every order in one transaction
        batches = [[txs[i * per_order + k] for i in range(orders)] for k in range(per_order)]
    else:
        batches = [[tx] for tx in txs]
    written = []
    for batch in batches:
        before = frames()
        conn.execute("BEGIN IMMEDIATE")
        for tx in batch:
            for sql, values in tx:
                rows = conn.execute(sql, [value(v) for v in values])
                if sql.startswith("SELECT") or "RETURNING" in sql:
                    rows.fetchall()
        conn.execute("COMMIT")
        written.append(frames() - before)
    conn.close()
    shutil.rmtree(work)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", required=True, help="stderr of the traced server")
    parser.add_argument("--small", required=True, help="that server's SQLite database")
    parser.add_argument("--big", required=True, help="a large SQLite database to replay onto (copied)")
    parser.add_argument("--per-order", type=int, default=6,
                        help="transactions per payment in the trace (acknowledgement + 5 steps)")
    args = parser.parse_args()
    txs = transactions(args.trace)
    if not txs or len(txs) % args.per_order:
        raise SystemExit(f"{len(txs)} transactions in the trace: not a multiple of {args.per_order}")
    orders = len(txs) // args.per_order
    for grouped in (False, True):
        for ordered in (False, True):
            written = replay(args, txs, args.per_order, ordered, grouped)
            label = ("grouped by step" if grouped else "as run") + (", ordered ids" if ordered else ", ids as traced")
            print(f"{label:36} {sum(written):5} frames for {orders} payments  {written}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Load test harness: builds the release binary once, then for each database engine starts
# facture on a fresh database with mail going to a local SMTP sink, runs `facture loadgen`
# at several rates, and prints a markdown table (also written to $OUT/results.md).
#
#   benches/run.sh                     # SQLite then PostgreSQL, rates 500 1000 2000 burst
#   ENGINES=sqlite RATES="1000" DURATION=60 benches/run.sh   # the 60 s sustained run
#
# Environment:
#   ENGINES      engines to run (default "sqlite postgres")
#   RATES        events/s per run, or "burst" (default "500 1000 2000 burst")
#   DURATION     seconds of traffic per rated run: orders = rate × DURATION (default 10)
#   BURST_ORDERS orders sent in the burst run (default 10000)
#   CONCURRENCY  requests in flight (default 32); CONCURRENCY_BURST for the burst run (64)
#   MAIL         smtp (default: the test suite's SMTP sink, benches/smtp_sink.rs) or file
#   SINK_BIN     a prebuilt smtp_sink (default: built by cargo, even with SKIP_BUILD=1)
#   PG_ADMIN     admin URL for PostgreSQL (default postgres://postgres@127.0.0.1:5432/postgres)
#   FACTURE_LOG  server log filter (default "warn": per-event info lines are left out)
#   OUT          where databases, logs and results go (default target/bench-run)
#   SKIP_BUILD=1 use target/release/facture as it is (no cargo build first)
#   BENCHES=1    also run the criterion benches (verify, group_commit, render) first
#
# Every request goes to 127.0.0.1 only. The server, the sink and the load generator share
# the machine's cores: the table reports the CPU each used, so the limit found is visible.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINES=${ENGINES:-"sqlite postgres"}
RATES=${RATES:-"500 1000 2000 burst"}
DURATION=${DURATION:-10}
BURST_ORDERS=${BURST_ORDERS:-10000}
CONCURRENCY=${CONCURRENCY:-32}
MAIL=${MAIL:-smtp}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=${OUT:-target/bench-run}
export FACTURE_LOG=${FACTURE_LOG:-warn}

API_PORT=18480
METRICS_PORT=18481
SMTP_PORT=18425
SECRET=whsec_bench_0123456789abcdef
TICKS=$(getconf CLK_TCK)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS="$OUT/results.md"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "==> cargo build --release --bin facture" >&2
  cargo build --release --bin facture >&2
fi
BIN="${BIN:-$PWD/target/release/facture}"

# The SMTP sink is a bench target (it reuses the test suite's sink); cargo prints its path.
if [ "$MAIL" = smtp ] && [ -z "${SINK_BIN:-}" ]; then
  echo "==> cargo build --release --bench smtp_sink" >&2
  SINK_BIN=$(cargo build --release --bench smtp_sink --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "smtp_sink" and m.get("executable"):
        print(m["executable"])')
fi

if [ "${BENCHES:-0}" = 1 ]; then
  for b in verify group_commit render; do
    echo "==> cargo bench --bench $b" >&2
    env -u FACTURE_TEST_DATABASE_URL cargo bench --bench "$b" -- --warm-up-time 1 --measurement-time 5 2>&1 \
      | grep -E '^[a-z_/0-9]+ +time:|time:|thrpt:' >&2 || true
  done
fi

SERVER_PID=""
SINK_PID=""
PG_DB=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null || true
  if [ -n "$PG_DB" ]; then
    psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  SERVER_PID="" SINK_PID="" PG_DB=""
}
trap cleanup EXIT INT TERM

# The SMTP server: the test suite's sink (benches/smtp_sink.rs), which accepts and discards
# every message and writes how many into $1 when stopped.
start_sink() {
  "$SINK_BIN" "$SMTP_PORT" "$1" &
  SINK_PID=$!
}

# utime+stime of a process, in seconds.
cpu_of() {
  awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# Busy, total and stolen jiffies of the whole machine. Steal is the time the hypervisor gave
# this virtual machine's cores to others: with 5 % or more, most runs' ack p99 went past
# 9 ms whatever the build (BENCHMARKS.md, eighth session), so each run reports it.
machine_cpu() {
  awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8; total = busy + $5 + $6; print busy, total, $9 }' /proc/stat
}
rss_peak_mb() {
  awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0
}
rss_now_mb() {
  awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0
}

wait_ready() {
  for _ in $(seq 1 200); do
    if curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "facture exited; see $1" >&2; return 1; fi
    sleep 0.1
  done
  echo "facture did not become ready; see $1" >&2
  return 1
}

printf '| engine | mail | rate (ev/s) | orders | achieved (ev/s) | ack p50 (ms) | ack p90 | ack p99 | ack max | non-2xx | drain (s) | paid orders/s e2e | e2e p50 (ms) | e2e p99 (ms) | server CPU (cores) | sink CPU | loadgen CPU | machine busy | server RSS peak (MB) | CPU steal |\n' >"$RESULTS"
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n' >>"$RESULTS"

for engine in $ENGINES; do
  dir="$OUT/$engine"
  # The last run's files are moved aside, not deleted: ext4 skips inodes freed in the last
  # minutes when it allocates new ones, so deleting 10,000 invoices just before a run made
  # each new file's creation scan past them (a fifth of the storage threads' time in perf).
  # Reclaim the space with `rm -rf $OUT/old` well before the next run.
  if [ -e "$dir" ]; then
    mkdir -p "$OUT/old"
    mv "$dir" "$OUT/old/$engine.$(date +%s%N)"
  fi
  mkdir -p "$dir"
  case $engine in
    sqlite) db_url="sqlite://$dir/facture.db" ;;
    postgres)
      PG_DB="facture_bench_$(date +%s)"
      psql "$PG_ADMIN" -qAtc "CREATE DATABASE $PG_DB" >/dev/null
      db_url="${PG_ADMIN%/*}/$PG_DB"
      ;;
    *) echo "unknown engine $engine" >&2; exit 1 ;;
  esac
  export FACTURE__DATABASE__URL="$db_url"
  export FACTURE__SERVER__PORT=$API_PORT
  export FACTURE__METRICS__PORT=$METRICS_PORT
  export FACTURE__STRIPE__WEBHOOK_SECRETS=$SECRET
  export FACTURE__AUTH__JWT_SECRET=bench-jwt-secret-0123456789abcdef
  export FACTURE__APP__DATA_DIR="$dir/data"
  export FACTURE__STORAGE__ROOT="$dir/uploads"
  export FACTURE__MAIL__OUTBOX="$dir/outbox"
  export FACTURE__MAIL__TRANSPORT=$MAIL
  export FACTURE__MAIL__SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
  if [ "$engine" = postgres ]; then export FACTURE__DATABASE__POOL_SIZE=16; else unset FACTURE__DATABASE__POOL_SIZE; fi

  [ "$MAIL" = smtp ] && start_sink "$dir/sink-count"
  "$BIN" migrate >/dev/null
  "$BIN" serve 2>"$dir/server.log" &
  SERVER_PID=$!
  wait_ready "$dir/server.log"
  echo "==> $engine: facture pid $SERVER_PID, mail $MAIL" >&2

  for rate in $RATES; do
    if [ "$rate" = burst ]; then
      orders=$BURST_ORDERS; pace=(--burst); conc=${CONCURRENCY_BURST:-64}
    else
      orders=$((rate * DURATION)); pace=(--rate "$rate"); conc=$CONCURRENCY
    fi
    echo "==> $engine: $orders orders at $rate" >&2
    srv0=$(cpu_of "$SERVER_PID"); sink0=0
    [ -n "$SINK_PID" ] && sink0=$(cpu_of "$SINK_PID")
    read -r busy0 total0 steal0 < <(machine_cpu)
    report="$dir/loadgen-$rate.json"
    TIMEFORMAT='%U %S'
    { time "$BIN" loadgen --url "http://127.0.0.1:$API_PORT" --secret "$SECRET" \
        --orders "$orders" "${pace[@]}" --concurrency "$conc" --json \
        >"$report" 2>"$dir/loadgen-$rate.log"; } 2>"$dir/loadgen-$rate.time" || {
      echo "loadgen failed (see $dir/loadgen-$rate.log)" >&2
    }
    read -r busy1 total1 steal1 < <(machine_cpu)
    srv1=$(cpu_of "$SERVER_PID"); sink1=0
    [ -n "$SINK_PID" ] && sink1=$(cpu_of "$SINK_PID")
    read -r lg_user lg_sys <"$dir/loadgen-$rate.time"
    rss=$(rss_peak_mb "$SERVER_PID")
    python3 - "$report" "$engine" "$MAIL" "$rate" "$srv0" "$srv1" "$sink0" "$sink1" \
      "$lg_user" "$lg_sys" "$busy0" "$total0" "$busy1" "$total1" "$rss" "$steal0" "$steal1" >>"$RESULTS" <<'PY'
import json, sys
(path, engine, mail, rate, s0, s1, k0, k1, lu, ls, b0, t0, b1, t1, rss, st0, st1) = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    print(f"| {engine} | {mail} | {rate} | failed | | | | | | | | | | | | | | | | |")
    sys.exit(0)
wall = r["drain_secs"] or r["send_secs"]
span = max(r["send_secs"], wall)
cores = lambda a, b: (float(b) - float(a)) / span if span else 0
machine = (float(b1) - float(b0)) / max(float(t1) - float(t0), 1) * 100
stolen = float(st1) - float(st0)
steal = stolen / max(float(t1) - float(t0) + stolen, 1) * 100
non2xx = r["errors"]
fmt = lambda v, d=2: "" if v is None else f"{v:.{d}f}"
a, e = r["ack_ms"], r["end_to_end_ms"]
print(f"| {engine} | {mail} | {rate} | {r['orders']} | {r['achieved_rate']:.0f} | {a['p50']:.2f} | {a['p90']:.2f} | {a['p99']:.2f} | {a['max']:.1f} | {non2xx} | {fmt(r['drain_secs'], 1)} | {fmt(r['orders_per_sec'], 0)} | {e['p50']:.0f} | {e['p99']:.0f} | {cores(s0, s1):.2f} | {cores(k0, k1):.2f} | {(float(lu) + float(ls)) / span:.2f} | {machine:.0f} % | {rss} | {steal:.1f} % |")
PY
    tail -n1 "$RESULTS" >&2
  done

  # What the server saw (handler times, waits for the database): kept beside the results.
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >"$dir/metrics.txt" 2>/dev/null || true
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  if [ -n "$SINK_PID" ]; then
    kill "$SINK_PID" && wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
    echo "==> $engine: the SMTP sink accepted $(cat "$dir/sink-count" 2>/dev/null || echo '?') mails" >&2
  fi
  if [ -n "$PG_DB" ]; then
    psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
    PG_DB=""
  fi
done

echo
cat "$RESULTS"

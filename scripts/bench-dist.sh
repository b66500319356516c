#!/usr/bin/env bash
# Benchmark of `cloudsync dist` (local -> local, many directories): a one-process `sync`,
# then the same sync as a distributed job run by 1, 2 and 4 worker processes, on one
# throw-away PostgreSQL 15. Prints, per run: wall time, peak RSS of each process
# (/usr/bin/time -v), and the database's load (rows written, transactions and their rate from
# pg_stat_database). Every result is checked with `cloudsync check`.
#
#   scripts/bench-dist.sh [--files N] [--per-dir N] [--workers "1 2 4"] [--shards N] [--dir DIR]
#                         [--keep]
#
# --shards N: directories each worker runs at once (`dist worker --shards`, default 1).
# --dir DIR: work there (for 1M files, a disk directory such as /tmp/bench-dist: every copy
#   of the tree takes ~4 GiB and 1M inodes); each destination is deleted once checked, unless
#   --keep; the source and the database stay in DIR (delete it when done).
#
# Defaults: 200000 files of 100-400 bytes, 200 per directory, in a temporary directory under
# /dev/shm (tmpfs: the disk's own effects stay out; see DESIGN.md section 8). Needs the
# release CLI (`cargo build --release --example cloudsync`), PostgreSQL 15 and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=200000
PER_DIR=200
WORKERS="1 2 4"
SHARDS=1
BASE=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --per-dir) PER_DIR=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --shards) SHARDS=$2; shift 2 ;;
    --dir) BASE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

CS=${CLOUDSYNC_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/cloudsync}
[ -x "$CS" ] || { echo "build the CLI first: cargo build --release --example cloudsync" >&2; exit 1; }
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL 15 is needed: apt-get install postgresql-15" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install time" >&2; exit 1; }

BASE=${BASE:-$(mktemp -d /dev/shm/bench-dist.XXXXXX)}
mkdir -p "$BASE"
chmod 755 "$BASE"  # the postgres user must reach its data directory
echo "# working in $BASE"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# PostgreSQL on a free port, as the harness of cloudsync-dist starts it.
PGDIR=$BASE/pg
mkdir -p "$PGDIR"
echo bench > "$PGDIR/pw"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PGDIR"
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A scram-sha-256 --pwfile "$PGDIR/pw" \
  --no-sync -E UTF8 --locale=C >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -o \
  "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=50" start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
export CLOUDSYNC_DB="postgres://postgres:bench@127.0.0.1:$PORT/postgres"
export PGPASSWORD=bench
psql_q() { psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atc "$1"; }

# The source tree: FILES files in directories of PER_DIR, two levels deep.
SRC=$BASE/src
if [ ! -d "$SRC" ]; then
  python3 - "$SRC" "$FILES" "$PER_DIR" <<'EOF'
import os, sys, random
root, files, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(1)
for i in range(files):
    d = i // per
    path = os.path.join(root, f"g{d // 50:03d}", f"d{d:05d}")
    if i % per == 0:
        os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, f"f{i:07d}.dat"), "wb") as f:
        f.write(os.urandom(random.randint(100, 400)))
EOF
fi
echo "# source: $FILES files, $PER_DIR per directory, $(find "$SRC" -type d | wc -l) directories"

# Peak RSS (KiB) from a GNU time -v log.
rss() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

check() {
  "$CS" check "$SRC" "$1" -q >/dev/null 2>&1 && echo clean || echo "DIFFERENCES"
}

# A destination once checked (disk and inodes for the next run).
done_with() { [ "$KEEP" = 1 ] || rm -rf "$1"; }

NOTES=()
echo
echo "| run | wall s | peak RSS MiB (each process) | shards | DB rows written | transactions | tx/s | check |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"

sync 2>/dev/null || true
DST=$BASE/dst-one
start=$(date +%s.%N)
/usr/bin/time -v -o "$BASE/time-one" "$CS" sync "$SRC" "$DST" -q
end=$(date +%s.%N)
printf '| one-process sync | %.1f | %d | - | - | - | - | %s |\n' \
  "$(echo "$end - $start" | bc)" "$(( $(rss "$BASE/time-one") / 1024 ))" "$(check "$DST")"
done_with "$DST"

for n in $WORKERS; do
  DST=$BASE/dst-$n
  psql_q "DROP SCHEMA IF EXISTS cloudsync CASCADE" >/dev/null 2>&1 || true
  # Schema created again before the counters are read (its catalog rows are not the job's).
  "$CS" dist status 0 >/dev/null 2>&1 || true
  read -r x0 ins0 upd0 <<<"$(psql_q "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated
                                      FROM pg_stat_database WHERE datname = 'postgres'" | tr '|' ' ')"
  start=$(date +%s.%N)
  job=$("$CS" dist submit --mode sync "$SRC" "$DST" | tail -1)
  pids=()
  for i in $(seq 1 "$n"); do
    /usr/bin/time -v -o "$BASE/time-$n-$i" "$CS" dist worker --until-idle --poll 200ms --shards "$SHARDS" -q &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  psql_q "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1 || true
  sleep 1
  read -r x1 ins1 upd1 <<<"$(psql_q "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated
                                      FROM pg_stat_database WHERE datname = 'postgres'" | tr '|' ' ')"
  state=$("$CS" dist status "$job" | awk '/^state:/ {print $2}')
  shards=$(psql_q "SELECT count(*) FROM cloudsync.shards WHERE job = $job")
  # Which workers ran which kinds of shard (a flat directory's batches should spread).
  NOTES+=("$n worker(s): $(psql_q "SELECT string_agg(kind || ' ' || n || ' by ' || w || ' worker(s)', ', ')
                                   FROM (SELECT kind, count(*) AS n, count(DISTINCT finished_by) AS w
                                         FROM cloudsync.shards WHERE job = $job GROUP BY kind
                                         ORDER BY kind) k")")
  rsss=""
  for i in $(seq 1 "$n"); do rsss="$rsss $(( $(rss "$BASE/time-$n-$i") / 1024 ))"; done
  wall=$(echo "$end - $start" | bc)
  tx=$((x1 - x0))
  printf '| dist, %d worker(s) x %d shards (%s) | %.1f | %s | %s | %d inserted, %d updated | %d | %.0f | %s |\n' \
    "$n" "$SHARDS" "$state" "$wall" "${rsss# }" "$shards" "$((ins1 - ins0))" "$((upd1 - upd0))" "$tx" \
    "$(echo "$tx / $wall" | bc -l)" "$(check "$DST")"
  done_with "$DST"
done
echo
for note in "${NOTES[@]}"; do echo "# shards, $note"; done
echo "# database size: $(psql_q "SELECT pg_size_pretty(pg_database_size('postgres'))")"

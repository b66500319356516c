#!/usr/bin/env bash
# Side-by-side timing of `cloudsync copy` and `rclone copy` uploading to the same WebDAV server
# (Apache httpd + mod_dav_fs on 127.0.0.1, Basic auth), alternating, REPS repetitions each:
#   - SMALL files of 1-16 KiB in one directory
#   - one BIG_MIB MiB file
# Prints each timing, then the medians and ours/rclone ratios.
# usage: cloudsync-webdav/bench/compare-rclone.sh [SMALL=500] [BIG_MIB=256] [REPS=3]
# Needs: apache2, htpasswd, curl, bc, rclone, and `cargo build --release --features webdav --example cloudsync`.
set -euo pipefail
cd "$(dirname "$0")/../.."
SMALL=${1:-500}; BIG_MIB=${2:-256}; REPS=${3:-3}
BIN=${CLOUDSYNC_BIN:-target/release/examples/cloudsync}
[ -x "$BIN" ] || { echo "build it first: cargo build --release --features webdav --example cloudsync" >&2; exit 1; }
W=$(mktemp -d /tmp/cloudsync-bench-webdav.XXXXXX); chmod 755 "$W"
[ -n "${KEEP:-}" ] && echo "work dir: $W"
mkdir -p "$W/data" "$W/lock" "$W/src/small" "$W/src/big"
htpasswd -bc "$W/htpasswd" synctest synctest-pass 2>/dev/null
if [ "$(id -u)" = 0 ]; then chown -R www-data:www-data "$W/data" "$W/lock"; U="User www-data
Group www-data"; else U=""; fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
M=/usr/lib/apache2/modules
cat > "$W/httpd.conf" <<CFG
ServerRoot $W
ServerName localhost
Listen 127.0.0.1:$PORT
PidFile $W/httpd.pid
ErrorLog $W/error.log
LogLevel warn
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authn_file_module $M/mod_authn_file.so
LoadModule auth_basic_module $M/mod_auth_basic.so
LoadModule alias_module $M/mod_alias.so
LoadModule dav_module $M/mod_dav.so
LoadModule dav_fs_module $M/mod_dav_fs.so
$U
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MaxKeepAliveRequests 0
Mutex file:$W/lock
DAVLockDB $W/lock/DAVLock
Alias /dav $W/data
<Directory $W/data>
    Dav On
    AuthType Basic
    AuthName "bench"
    AuthUserFile $W/htpasswd
    Require valid-user
</Directory>
CFG
apache2 -f "$W/httpd.conf" -DFOREGROUND & APID=$!
trap 'kill $APID 2>/dev/null; wait $APID 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

python3 - "$W/src/small" "$SMALL" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
r = random.Random(7)
for i in range(n):
    with open(os.path.join(d, f"f{i:05}.bin"), "wb") as f:
        f.write(r.randbytes(r.randint(1024, 16384)))
PY
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom > "$W/src/big/big.bin"
echo "rclone: $(rclone version | head -1); cloudsync: $BIN; server: Apache mod_dav_fs on 127.0.0.1:$PORT"

export DAVPW=synctest-pass
OBS=$(rclone obscure synctest-pass)
: > "$W/rclone.conf"
ours() { "$BIN" copy "$1" "webdav://synctest@127.0.0.1:$PORT/dav/$2?password_env=DAVPW" >/dev/null; }
theirs() { rclone --config "$W/rclone.conf" copy "$1" ":webdav,url='http://127.0.0.1:$PORT/dav/$2',vendor=other,user=synctest,pass=$OBS:"; }
t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
mkcol() { curl -sf -u synctest:synctest-pass -X MKCOL "http://127.0.0.1:$PORT/dav/$1/" -o /dev/null; }

declare -A R
for case in small big; do
  for i in $(seq "$REPS"); do
    mkcol "ours-$case-$i"; mkcol "rclone-$case-$i"
    a=$(t ours "$W/src/$case" "ours-$case-$i"); b=$(t theirs "$W/src/$case" "rclone-$case-$i")
    echo "$case rep $i: cloudsync ${a}s rclone ${b}s"
    R[$case-ours]+="$a "; R[$case-rclone]+="$b "
  done
done
# Both tools must have uploaded everything.
for case in small big; do
  for i in $(seq "$REPS"); do
    diff -r "$W/src/$case" "$W/data/ours-$case-$i" >/dev/null || echo "MISMATCH ours $case $i"
    diff -r "$W/src/$case" "$W/data/rclone-$case-$i" >/dev/null || echo "MISMATCH rclone $case $i"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for case in small big; do
  mo=$(echo "${R[$case-ours]}" | median); mr=$(echo "${R[$case-rclone]}" | median)
  echo "$case: median cloudsync ${mo}s, rclone ${mr}s, ratio $(echo "scale=2; $mo / $mr" | bc)"
done

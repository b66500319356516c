#!/usr/bin/env bash
# Side-by-side benchmark of the cloudsync CLI (release build) against rclone, rsync -a, cp -r and cp -a
# on generated local trees; prints a markdown table of medians, ratios to rclone and peak memory.
#
#   scripts/bench.sh --quick                      # 10k small files: first run + no-op run
#   scripts/bench.sh                              # 10k small, 200k tiny, one 1 GiB file
#   scripts/bench.sh --scenarios tiny --reps 7 --tiny-files 50000
#   scripts/bench.sh --help                       # every option
#   scripts/bench.sh --net                        # SFTP, FTP, FTPS, WebDAV, WebDAVS: 2,000 small
#                                                 # files and one 512 MiB file, up and down,
#                                                 # against rclone and sftp / lftp / curl
#   scripts/bench.sh --net --backends sftp --scenarios small --reps 5
#   scripts/bench.sh --resume                     # 1 GiB to OpenSSH cut at 50 %: resumed run vs
#                                                 # full re-send vs rclone (BENCH_RESUME_MIB=...)
#
# Source trees are generated once into target/bench-work/src and reused; see DESIGN.md §8 for
# why runs alternate between tools and old trees are moved aside instead of deleted.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
net=false
if [ "${1:-}" = "--net" ]; then net=true; shift; fi
missing=()
pkgs=(rclone rsync time)
if $net; then
  # The servers come from the test dependencies; the reference clients from here.
  bash scripts/install-test-deps.sh >/dev/null
  pkgs+=(lftp curl openssh-client)
fi
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--resume" ]; then
  cargo build --release -p cloudsync --all-features --example cloudsync
  exec cargo test --release -p cloudsync --all-features --test bench_resume -- --ignored --nocapture
fi

if $net; then
  cargo build --release -p cloudsync --all-features --example cloudsync
  cargo bench -p cloudsync --all-features --bench net -- "$@"
else
  cargo build --release -p cloudsync --example cloudsync
  cargo bench -p cloudsync --bench harness -- "$@"
fi

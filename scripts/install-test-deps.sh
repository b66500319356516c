#!/usr/bin/env bash
# Installs the programs the tests run against (Debian packages and the like). Idempotent:
# anything already present is not reinstalled. Needs root (or sudo) on Debian 12.
#
# Each backend owns one file in scripts/install.d/ that is sourced here; it calls `need_apt PKG..`
# for Debian packages and may do its own extra steps (unpacking conflicting packages, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# apt must not start system services (sshd, proftpd, nginx, apache) on their standard ports.
if [ ! -x /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi

APT_UPDATED=""
# need_apt PKG...: installs the Debian packages that are not installed yet.
need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The reference tools the differential tests and benchmarks compare against.
need_apt rclone rsync

for f in scripts/install.d/*.sh; do
  [ -e "$f" ] || continue
  # shellcheck source=/dev/null
  . "$f"
done

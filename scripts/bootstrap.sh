#!/usr/bin/env bash
# Gets a fresh Debian machine (as root) ready to run wpbackup from this checkout: Debian's
# node and npm only to bootstrap (the pinned Node 24 comes from npm), zstd, tar, the MariaDB
# client, then the npm dependencies. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v tar >/dev/null 2>&1 || missing+=(tar)
command -v mariadb-dump >/dev/null 2>&1 || command -v mysqldump >/dev/null 2>&1 || missing+=(mariadb-client)
if ((${#missing[@]})); then
  echo "[bootstrap] installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[bootstrap] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/node --version >/dev/null

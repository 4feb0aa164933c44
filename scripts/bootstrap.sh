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

# README's way to call wpbackup: bin/wpbackup execs the pinned Node 24 (no npm, no second
# node in between), linked onto PATH unless something else already has the name.
link=/usr/local/bin/wpbackup
target="$PWD/bin/wpbackup"
current=$(readlink "$link" 2>/dev/null || true)
if [ "$current" != "$target" ]; then
  # Free, or our own link from a checkout that moved or is gone: (re)link it. Anything else is left alone.
  if [ -w "$(dirname "$link")" ] && { [ ! -e "$link" ] && [ ! -L "$link" ] || { [ -L "$link" ] && { [ ! -e "$link" ] || [ "${current%/bin/wpbackup}" != "$current" ]; }; }; }; then
    ln -sfn "$target" "$link"
    echo "[bootstrap] linked $link -> $target"
  else
    echo "[bootstrap] $link is taken or not writable: call $target instead"
  fi
fi
# Also fills Node's compile cache for the CLI, so the first real call starts fast too.
bin/wpbackup --version >/dev/null

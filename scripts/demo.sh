#!/usr/bin/env bash
# The main job with embedded defaults: starts MariaDB and MinIO on this machine, creates a
# demo WordPress site (unless --site PATH is given) and backs it up for real to MinIO with a
# live progress bar. Safe to run again: each run makes one more backup.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
# shellcheck source-path=SCRIPTDIR source=lib/services.sh
. scripts/lib/services.sh
wpb_ensure_all >/dev/null
exec node_modules/.bin/node scripts/demo.ts "$@"

#!/usr/bin/env bash
# Makes sure MariaDB, PostgreSQL, MinIO and Mailpit are installed and running for the integration tests,
# then writes $WPBACKUP_TEST_HOME/services.json (read by test/helpers/services.ts).
# Safe to run again and again: when everything is up it only checks, in a second or two.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/services.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"

started=$(date +%s%N)
if ! wpb_ensure_all; then
  wpb_fail "test services are not ready (logs in $WPB_TEST_HOME/logs)" || true
  exit 1
fi
wpb_say "wrote $WPB_TEST_HOME/services.json in $(( ($(date +%s%N) - started) / 1000000 )) ms"

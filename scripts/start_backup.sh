#!/usr/bin/env bash
# Starts a backup of one site through the API:   ./start_backup.sh <site_id>
# Needs WPBACKUP_URL and WPBACKUP_TOKEN (an API token). The token reaches curl on stdin, never
# on its command line, so `ps` does not show it. Prints the job as JSON.
# Exit codes: 0 started, 2 refused or bad input (already running, quota, unknown site), 1 failed.
set -euo pipefail
site=${1:-}
[[ $site =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]] || { echo "usage: start_backup.sh <site_id>  (a site id is a uuid, got '${site}')" >&2; exit 2; }
[[ -n ${WPBACKUP_URL:-} ]] || { echo "start_backup.sh: set WPBACKUP_URL, e.g. export WPBACKUP_URL=http://127.0.0.1:8080" >&2; exit 2; }
[[ -n ${WPBACKUP_TOKEN:-} ]] || { echo "start_backup.sh: set WPBACKUP_TOKEN to an API token (POST /api/v1/tokens)" >&2; exit 2; }
command -v curl >/dev/null || { echo "start_backup.sh: curl is not installed (apt-get install curl)" >&2; exit 2; }

out=$(printf 'header = "Authorization: Bearer %s"\n' "$WPBACKUP_TOKEN" |
  curl -sS --config - -X POST -w '\n%{http_code}' "${WPBACKUP_URL%/}/api/v1/sites/$site/backup/start") || { echo "start_backup.sh: cannot reach $WPBACKUP_URL" >&2; exit 1; }
code=${out##*$'\n'}
body=${out%$'\n'*}
case $code in
  2??) echo "$body" ;;
  4??) echo "start_backup.sh: refused (HTTP $code): $body" >&2; exit 2 ;;
  *) echo "start_backup.sh: server error (HTTP $code): $body" >&2; exit 1 ;;
esac

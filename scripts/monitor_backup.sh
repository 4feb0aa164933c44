#!/usr/bin/env bash
# Watches a site's backup until it ends:   ./monitor_backup.sh <site_id>
# Prints one line per change: [ 42%] running create_bundle: Reading wp-content (...)
# Needs WPBACKUP_URL and WPBACKUP_TOKEN (kept off curl's command line), curl and jq.
# Exit codes: 0 completed, 1 failed, 2 bad input, 130 stopped. MONITOR_INTERVAL sets the poll (s).
set -euo pipefail
site=${1:-}
[[ $site =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]] || { echo "usage: monitor_backup.sh <site_id>  (a site id is a uuid, got '${site}')" >&2; exit 2; }
[[ -n ${WPBACKUP_URL:-} ]] || { echo "monitor_backup.sh: set WPBACKUP_URL, e.g. export WPBACKUP_URL=http://127.0.0.1:8080" >&2; exit 2; }
[[ -n ${WPBACKUP_TOKEN:-} ]] || { echo "monitor_backup.sh: set WPBACKUP_TOKEN to an API token (POST /api/v1/tokens)" >&2; exit 2; }
for tool in curl jq; do command -v "$tool" >/dev/null || { echo "monitor_backup.sh: $tool is not installed (apt-get install $tool)" >&2; exit 2; }; done

status_json() {
  printf 'header = "Authorization: Bearer %s"\n' "$WPBACKUP_TOKEN" |
    curl -sS --fail-with-body --config - "${WPBACKUP_URL%/}/api/v1/sites/$site/backup/status"
}

last=""
while :; do
  if ! json=$(status_json); then
    echo "monitor_backup.sh: ${json:-cannot reach $WPBACKUP_URL}" >&2
    exit 2
  fi
  line=$(jq -r '"[\(.progress | tostring | (" " * (3 - length)) + .)%] \(.status) \(.stage // "-"): \(.stage_detail // "")\(if .error then " error: \(.error)" else "" end)"' <<<"$json")
  [[ $line != "$last" ]] && echo "$line"
  last=$line
  case $(jq -r .status <<<"$json") in
    completed) echo "backup $(jq -r .backup_id <<<"$json") completed"; exit 0 ;;
    failed) exit 1 ;;
    stopped) exit 130 ;;
    idle) [[ -n ${seen_running:-} ]] && exit 1 ;;
    running) seen_running=1 ;;
  esac
  sleep "${MONITOR_INTERVAL:-1}"
done

#!/bin/bash
# Ends this pod through RunPod's REST API without the lambda-gha agent: the backstop that fires
# at the pod's maximum lifetime, and after a failed boot once the launcher had time to read the
# boot log. It uses the pod's own key and id, which RunPod puts in every pod's environment
# (RUNPOD_API_KEY, "Pod-scoped API key", and RUNPOD_POD_ID: RunPod's documentation, Pods →
# Environment variables): the launcher's key never reaches the pod. It retries until RunPod
# deletes the pod or no longer knows it, and stops only when the key is refused. curl speaks to
# the API (the key reaches it on stdin, never on a command line).
set -uo pipefail
# With DELAY (seconds), the pod is deleted DELAY after the start.
DELAY="${1:-0}"
STARTED="$(date +%s.%N)"
CONFIG=/etc/lambda-gha/agent.json
SCALE="${LAMBDA_API_TIME_SCALE:-1}"
log() { printf '[lambda-gha terminate-self %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# Seconds on this machine's clock (simulated ones are SCALE times shorter).
pause() { sleep "$(awk -v s="$1" -v k="$SCALE" 'BEGIN { print s / k }')"; }
API="$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1])).get("api_url") or "https://api.runpod.io")' "$CONFIG" 2>/dev/null)"
API="${API:-https://api.runpod.io}"
KEY="${RUNPOD_API_KEY:-}"
ID="${RUNPOD_POD_ID:-}"
[ -n "$KEY" ] && [ -n "$ID" ] || {
  log "no RUNPOD_API_KEY or RUNPOD_POD_ID here: the action's stop or the reaper ends this pod"
  exit 1
}
left="$(awk -v s="$STARTED" -v d="$DELAY" -v now="$(date +%s.%N)" 'BEGIN { l = s + d - now; print (l > 0 ? l : 0) }')"
sleep "$left"
attempt=0
while :; do
  attempt=$((attempt + 1))
  log "deleting pod $ID (attempt $attempt)"
  status="$(printf 'header = "Authorization: Bearer %s"\n' "$KEY" |
    curl -sS -K - -X DELETE --max-time 30 -o /dev/null -w '%{http_code}' "$API/v2/pods/$ID")"
  case "$status" in
    204) log "deleted pod $ID"; exit 0 ;;
    404) log "RunPod no longer knows pod $ID: it is gone"; exit 0 ;;
    401|403) log "RunPod refused the pod's key (HTTP $status): this pod cannot end itself"; exit 1 ;;
    # Over the rate limit: soon again.
    429) log "delete: HTTP 429; trying again"; pause 5 ;;
    *) log "delete: HTTP ${status:-no answer}; trying again"; pause 15 ;;
  esac
done

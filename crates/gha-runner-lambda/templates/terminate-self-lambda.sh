#!/bin/bash
# Ends this machine through Lambda Cloud's API without the lambda-gha agent: the backstop that
# fires at the machine's maximum lifetime, and after a failed boot once the launcher had time
# to read the boot log. Lambda has no metadata service, so it lists instances and terminates
# the one carrying this machine's tag; it retries until Lambda no longer lists it as running,
# and stops only when the key is refused. curl speaks to the API (the key reaches it on stdin,
# never on a command line); python3, which Lambda's image has, reads the JSON.
set -uo pipefail
# With DELAY (seconds), the machine is found first and terminated DELAY after the start.
DELAY="${1:-0}"
STARTED="$(date +%s.%N)"
CONFIG=/etc/lambda-gha/agent.json
SCALE="${LAMBDA_API_TIME_SCALE:-1}"
log() { printf '[lambda-gha terminate-self %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# Seconds on this machine's clock (simulated ones are SCALE times shorter).
pause() { sleep "$(awk -v s="$1" -v k="$SCALE" 'BEGIN { print s / k }')"; }
{ read -r API; read -r TAG; read -r VALUE; read -r KEY; } < <(python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))
print(c.get("api_url") or "https://cloud.lambda.ai"); print(c["machine_tag"][0])
print(c["machine_tag"][1]); print(c.get("api_key") or "")' "$CONFIG")
[ -n "${KEY:-}" ] || { log "no API key on this machine: the action's stop or the reaper ends it"; exit 1; }
# Answers "<body>\n<status>".
api() {
  printf 'header = "Authorization: Bearer %s"\n' "$KEY" |
    curl -sS -K - -X "$1" -H 'Content-Type: application/json' --max-time 30 \
      ${3:+--data "$3"} -w '\n%{http_code}' "$API$2"
}
refused() { log "Lambda refused the API key (HTTP $1): this machine cannot end itself"; exit 1; }
id=
attempt=0
while :; do
  attempt=$((attempt + 1))
  if [ -z "$id" ]; then
    answer="$(api GET /api/v1/instances)"
    status="${answer##*$'\n'}"
    case "$status" in
      200)
        id="$(printf '%s' "${answer%$'\n'*}" | python3 -c 'import json, sys
for i in json.load(sys.stdin)["data"]:
    if {"key": sys.argv[1], "value": sys.argv[2]} in (i.get("tags") or []) and i["status"] not in ("terminating", "terminated"):
        print(i["id"])' "$TAG" "$VALUE")"
        if [ -z "$id" ]; then
          log "no running instance tagged $TAG=$VALUE: this machine is ending"
          exit 0
        fi
        # Lambda allows one request a second.
        pause 1 ;;
      401|403) refused "$status" ;;
      429) log "listing instances: HTTP 429; trying again"; pause 2; continue ;;
      *) log "listing instances: HTTP ${status:-no answer}; trying again"; pause 15; continue ;;
    esac
  fi
  left="$(awk -v s="$STARTED" -v d="$DELAY" -v now="$(date +%s.%N)" 'BEGIN { l = s + d - now; print (l > 0 ? l : 0) }')"
  sleep "$left"
  log "terminating $id (attempt $attempt)"
  answer="$(api POST /api/v1/instance-operations/terminate "{\"instance_ids\": [\"$id\"]}")"
  status="${answer##*$'\n'}"
  case "$status" in
    200) log "terminated $id"; exit 0 ;;
    401|403) refused "$status" ;;
    # Over the rate limit (the key is shared with the launcher): soon again.
    429) log "terminate: HTTP 429; trying again"; pause 2 ;;
    # Gone already, or an outage: look again before the next try.
    *) log "terminate: HTTP ${status:-no answer}; trying again"; id=; pause 15 ;;
  esac
done

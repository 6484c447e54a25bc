#!/bin/bash
# Ends this machine through Lambda Cloud's API without the lambda-gha agent: the backstop that
# fires at the machine's maximum lifetime, and after a failed boot once the launcher had time
# to read the boot log. Lambda has no metadata service, so it lists instances and terminates
# the one carrying this machine's tag; it retries until Lambda no longer lists it as running,
# and stops only when the key is refused. curl speaks to the API (the key reaches it on stdin,
# never on a command line); python3, which Lambda's image has, reads the JSON.
set -uo pipefail
CONFIG=/etc/lambda-gha/agent.json
SCALE="${LAMBDA_SIM_TIME_SCALE:-1}"
log() { printf '[lambda-gha terminate-self %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
config() {
  python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))
print({"url": c.get("api_url") or "https://cloud.lambda.ai", "key": c.get("api_key") or "",
       "tag": c["machine_tag"][0], "value": c["machine_tag"][1]}[sys.argv[2]])' "$CONFIG" "$1"
}
API="$(config url)"
TAG="$(config tag)"
VALUE="$(config value)"
[ -n "$(config key)" ] || { log "no API key on this machine: the action's stop or the reaper ends it"; exit 1; }
# Answers "<body>\n<status>".
api() {
  printf 'header = "Authorization: Bearer %s"\n' "$(config key)" |
    curl -sS -K - -X "$1" -H 'Content-Type: application/json' --max-time 30 \
      ${3:+--data "$3"} -w '\n%{http_code}' "$API$2"
}
attempt=0
while :; do
  attempt=$((attempt + 1))
  answer="$(api GET /api/v1/instances)"
  status="${answer##*$'\n'}"
  if [ "$status" = 200 ]; then
    id="$(printf '%s' "${answer%$'\n'*}" | python3 -c 'import json, sys
for i in json.load(sys.stdin)["data"]:
    if {"key": sys.argv[1], "value": sys.argv[2]} in (i.get("tags") or []) and i["status"] not in ("terminating", "terminated"):
        print(i["id"])' "$TAG" "$VALUE")"
    if [ -z "$id" ]; then
      log "no running instance tagged $TAG=$VALUE: this machine is ending"
      exit 0
    fi
    log "terminating $id (attempt $attempt)"
    answer="$(api POST /api/v1/instance-operations/terminate "{\"instance_ids\": [\"$id\"]}")"
    status="${answer##*$'\n'}"
  fi
  case "$status" in
    200) ;;
    401|403) log "Lambda refused the API key (HTTP $status): this machine cannot end itself"; exit 1 ;;
    *) log "Lambda answered HTTP ${status:-nothing}; trying again" ;;
  esac
  sleep "$(awk -v k="$SCALE" 'BEGIN { print 15 / k }')"
done

#!/bin/bash
# lambda-gha boot script, rendered for one machine (version: LAMBDA_GHA_VERSION below).
# cloud-init runs it as root. It writes the machine's secrets to root-only files, empties
# cloud-init's copies of this script, creates the unprivileged runner user, fetches the GitHub
# runner and the lambda-gha agent of the same version (checksum-verified, or built from the
# action's commit when that has no release), starts {{runner_count}} runner(s) as that user,
# and hands the machine's life to the agent.
#
# Secrets are written to root-only files and never echoed or put on a command line: do not add
# `set -x` to this script.
set -euo pipefail
# Private until the secrets are written; 022 after, so what the runner needs is readable.
umask 077

LOG=/var/log/lambda-gha-boot.log
mkdir -p "$(dirname "$LOG")"
exec > >(tee -a "$LOG") 2>&1
step() { printf '[lambda-gha boot %s] %s\n' "$(date -u +%H:%M:%S.%3N)" "$*"; }
# A failed boot ends its machine itself, once the launcher had the hold to read this log.
fail() {
  step "FAILED: $*"
  if [ -x "${TERMINATE_SELF:-}" ]; then
    step "this machine ends itself in ${FAILED_BOOT_HOLD}s"
    arm failed-boot "$FAILED_BOOT_HOLD"
  fi
  exit 1
}
trap 'fail "line $LINENO exited with status $?"' ERR
[ "$(id -u)" = 0 ] || fail "the boot script runs as root (as cloud-init runs user data)"

# --- configuration ------------------------------------------------------------------------
LAMBDA_GHA_VERSION={{version}}
RUN_LABEL={{run_label}}
MACHINE_TAG={{machine_tag}}
RUNNER_MODE={{runner_mode}}
REGISTRATION_URL={{registration_url}}
# The GitHub runner the launcher resolved, per CPU: URL and SHA-256 (empty: none for that CPU).
RUNNER_X64_URL={{runner_x64_url}}
RUNNER_X64_SHA256={{runner_x64_sha256}}
RUNNER_ARM64_URL={{runner_arm64_url}}
RUNNER_ARM64_SHA256={{runner_arm64_sha256}}
AGENT_X86_64_URL={{agent_x86_64_url}}
AGENT_X86_64_SHA256={{agent_x86_64_sha256}}
AGENT_AARCH64_URL={{agent_aarch64_url}}
AGENT_AARCH64_SHA256={{agent_aarch64_sha256}}
AGENT_DELIVERED_SHA256={{agent_delivered_sha256}}
AGENT_DELIVERY_PATH={{agent_delivery_path}}
AGENT_DELIVERY_WAIT={{agent_delivery_wait}}
RUNNER_USER=runner
# Reusable runners: the organization runner group they join (empty: the default one).
RUNNER_GROUP={{runner_group}}
GRANT_SUDO={{grant_sudo}}
GRANT_DOCKER={{grant_docker}}
RUNNER_NAMES=({{runner_names}})
RUNNER_LABELS=({{runner_labels}})
# Each runner's GPUs (CUDA_VISIBLE_DEVICES); empty: it sees every GPU.
RUNNER_GPUS=({{runner_gpus}})
# The cache: a persistent volume of this region shared by the machines that mount it (empty:
# none). The runner and the agent are kept there by SHA-256; jobs keep their caches there.
CACHE_MOUNT={{cache_mount}}
# Below this much free space the cache is not used (a full volume would fail jobs' writes).
CACHE_MIN_FREE_KIB={{cache_min_free_kib}}

WATCHDOG_SECONDS={{watchdog_seconds}}
FAILED_BOOT_HOLD={{failed_boot_hold_seconds}}
# Seconds pass TIME_SCALE times faster under lambda-cloud-sim; on a machine this is 1.
TIME_SCALE="${LAMBDA_API_TIME_SCALE:-1}"

ETC=/etc/lambda-gha
BIN=/usr/local/bin
STATE=/var/lib/lambda-gha
TERMINATE_SELF=/usr/local/lib/lambda-gha/terminate-self.sh
HOOKS=/usr/local/lib/lambda-gha
RUNNERS="/home/$RUNNER_USER"
# The agent's socket and the health verdict: the runner user's hooks reach it, others do not.
AGENT_RUN=/run/lambda-gha
install -d -m 0700 "$ETC"
step "machine $MACHINE_TAG of $RUN_LABEL, lambda-gha $LAMBDA_GHA_VERSION, ${#RUNNER_NAMES[@]} runner(s)"

# --- secrets: root-only files ---------------------------------------------------------------
{{secrets}}

# cloud-init keeps copies of this script, secrets and all. Replaced, not truncated: bash is
# still reading this one through its open file.
for copy in /var/lib/cloud/instances/*/user-data.txt /var/lib/cloud/instances/*/user-data.txt.i \
  /var/lib/cloud/instances/*/scripts/part-* /var/lib/cloud/instances/*/obj.pkl; do
  [ -f "$copy" ] || continue
  : > "$copy.lambda-gha" && mv -f "$copy.lambda-gha" "$copy"
done

# --- the backstop: the machine ends at its maximum lifetime whatever becomes of the agent ------
# Armed before any download, so nothing later can leave a machine billing: by a systemd timer
# where systemd runs, by a detached root process where it does not. Runner jobs cannot stop
# either (they run as another user).
install -d -m 0755 "$STATE" "$(dirname "$TERMINATE_SELF")"
date +%s.%N > "$STATE/booted-at"
{{self_terminate}}
# arm NAME SECONDS: end this machine SECONDS (simulated ones under the simulator) from now.
arm() {
  local seconds
  seconds="$(awk -v s="$2" -v k="$TIME_SCALE" 'BEGIN { printf "%.3f", s / k }')"
  if [ -d /run/systemd/system ]; then
    systemd-run --quiet --unit="lambda-gha-$1" --on-active="${seconds}s" \
      --timer-property=AccuracySec=1s "$TERMINATE_SELF"
  else
    setsid nohup "$TERMINATE_SELF" "$seconds" >> "/var/log/lambda-gha-$1.log" 2>&1 < /dev/null &
  fi
}
if [ -x "$TERMINATE_SELF" ]; then
  arm watchdog "$WATCHDOG_SECONDS"
  step "watchdog armed: this machine ends ${WATCHDOG_SECONDS}s after boot at the latest"
else
  step "no watchdog: this provider's machines are ended by the agent, the action's stop and the reaper"
fi
umask 022

# --- the runner user, and its home owned by it --------------------------------------------------
# Before anything is put in the home: useradd leaves an existing directory as it is.
id "$RUNNER_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$RUNNER_USER"
chown "$RUNNER_USER:$RUNNER_USER" "$RUNNERS"
# The runner user gets sudo or docker only when asked: either can read the agent's API key.
if [ "$GRANT_SUDO" = 1 ]; then
  echo "$RUNNER_USER ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/90-lambda-gha-runner
  chmod 0440 /etc/sudoers.d/90-lambda-gha-runner
fi
if [ "$GRANT_DOCKER" = 1 ] && getent group docker >/dev/null; then
  usermod -aG docker "$RUNNER_USER"
fi
# Hooks reach the agent through a socket in here: the runner's group may enter, nobody else.
# (setgid: the socket the agent makes in it is the runner group's.)
install -d -m 2750 -o root -g "$RUNNER_USER" "$AGENT_RUN"
install -d -m 0755 "$BIN" "$HOOKS"
# As the runner user with a fresh environment, as `sudo -u runner -H` gives one: nothing of
# root's (a container's provider key, the boot's variables) reaches the runner or its jobs.
# setpriv (util-linux) is on every image, containers without sudo included, and execs the
# command itself: no process of root's stays between the agent's signals and the runner.
as_runner() {
  setpriv --reuid="$RUNNER_USER" --regid="$RUNNER_USER" --init-groups -- \
    env -i HOME="$RUNNERS" USER="$RUNNER_USER" LOGNAME="$RUNNER_USER" \
    SHELL=/bin/bash LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$@"
}

# --- the GitHub runner the launcher chose, checksum-verified -----------------------------------
case "$(uname -m)" in
  x86_64|amd64) RUNNER_ARCH=x64; RUNNER_URL="$RUNNER_X64_URL"; RUNNER_SHA256="$RUNNER_X64_SHA256"
    AGENT_URL="$AGENT_X86_64_URL"; AGENT_SHA256="$AGENT_X86_64_SHA256" ;;
  aarch64|arm64) RUNNER_ARCH=arm64; RUNNER_URL="$RUNNER_ARM64_URL"; RUNNER_SHA256="$RUNNER_ARM64_SHA256"
    AGENT_URL="$AGENT_AARCH64_URL"; AGENT_SHA256="$AGENT_AARCH64_SHA256" ;;
  *) fail "unsupported CPU $(uname -m)" ;;
esac
[ -n "$RUNNER_URL" ] || fail "GitHub offers no runner for linux-$RUNNER_ARCH"

# --- the cache, when this machine has one -----------------------------------------------------
# Every machine of the region may fill it at once: an entry is written under a name of this
# machine's own and renamed into place (a rename is atomic, on NFS too), so a reader finds a
# whole file or none; what it reads is checked against its SHA-256 after copying, so a
# corrupt entry is fetched again and replaced.
CACHE=
if [ -n "$CACHE_MOUNT" ]; then
  free_kib="$(df -Pk "$CACHE_MOUNT" 2>/dev/null | awk 'NR == 2 { print $4 }' || true)"
  if [ ! -d "$CACHE_MOUNT" ]; then
    step "cache: $CACHE_MOUNT is not mounted; going on without it"
  elif [ -z "$free_kib" ] || [ "$free_kib" -lt "$CACHE_MIN_FREE_KIB" ]; then
    step "cache: $CACHE_MOUNT is full (${free_kib:-?} KiB free); going on without it"
  elif install -d -m 0755 "$CACHE_MOUNT/lambda-gha" "$CACHE_MOUNT/lambda-gha/files" 2>/dev/null; then
    CACHE="$CACHE_MOUNT/lambda-gha"
    step "cache: using $CACHE (${free_kib} KiB free)"
  else
    step "cache: cannot write to $CACHE_MOUNT; going on without it"
  fi
fi
# fetch URL SHA256 NAME DEST [CURL_CONFIG]: DEST gets URL's file, verified when SHA256 is
# given; from the cache (its entry `<SHA256>-<NAME>`, NAME saying what and which version) when
# it holds a good copy, and kept there for the next machine otherwise.
fetch() {
  local url="$1" sha256="$2" name="$3" dest="$4" config="${5:-/dev/null}" entry=
  if [ -n "$CACHE" ] && [ -n "$sha256" ]; then
    entry="$CACHE/files/$sha256-$name"
    if [ -f "$entry" ] && cp "$entry" "$dest.cached" &&
        echo "$sha256  $dest.cached" | sha256sum -c - >/dev/null 2>&1; then
      mv -f "$dest.cached" "$dest"
      step "cache: $name from the cache (sha256 $sha256)"
      return 0
    fi
    rm -f "$dest.cached"
    if [ -f "$entry" ]; then
      step "cache: $(basename "$entry") does not match its SHA-256; fetching it again"
      rm -f "$entry"
    fi
  fi
  curl -fsSL --retry 5 --retry-delay 2 --retry-all-errors -K "$config" -o "$dest" "$url"
  if [ -n "$sha256" ]; then
    echo "$sha256  $dest" | sha256sum -c - >/dev/null || fail "checksum mismatch ($url)"
  fi
  if [ -n "$entry" ]; then
    local part="$entry.$MACHINE_TAG.$$.part"
    if cp "$dest" "$part" 2>/dev/null && mv -f "$part" "$entry" 2>/dev/null; then
      step "cache: kept $(basename "$entry")"
    else
      rm -f "$part"
      step "cache: could not keep $(basename "$entry") (is the volume full?); going on"
    fi
  fi
}

step "fetching the GitHub runner for linux-$RUNNER_ARCH: $RUNNER_URL"
install -d -m 0755 /var/cache/lambda-gha
TARBALL="/var/cache/lambda-gha/$(basename "$RUNNER_URL")"
# Some servers hand out a download token: it reaches curl in a root-only config file.
RUNNER_CURL_CONFIG=/dev/null
[ -f "$ETC/runner-$RUNNER_ARCH.curl" ] && RUNNER_CURL_CONFIG="$ETC/runner-$RUNNER_ARCH.curl"
fetch "$RUNNER_URL" "$RUNNER_SHA256" "$(basename "$RUNNER_URL")" "$TARBALL" "$RUNNER_CURL_CONFIG"
rm -f "$ETC"/runner-*.curl
if [ -n "$RUNNER_SHA256" ]; then
  step "runner verified (sha256 $RUNNER_SHA256)"
else
  step "WARNING: GitHub gave no checksum for this runner; trusting the TLS connection alone"
fi

# --- the agent: this project's version, checksum pinned at render time ------------------------
if [ -n "$AGENT_URL" ]; then
  step "fetching the lambda-gha agent $LAMBDA_GHA_VERSION"
  fetch "$AGENT_URL" "$AGENT_SHA256" "lambda-gha-$LAMBDA_GHA_VERSION-$RUNNER_ARCH" "$BIN/lambda-gha.download"
elif [ -n "$AGENT_DELIVERED_SHA256" ]; then
  # No release for the action's ref (a branch, a commit, a fork): the launcher built the agent
  # once and sends it over SSH as soon as this machine answers. Nothing is compiled here.
  [ "$RUNNER_ARCH" = x64 ] || fail "the launcher delivers an x86_64 agent only: use a released lambda-gha on $(uname -m) machines"
  step "waiting for the launcher to deliver the lambda-gha agent (sha256 $AGENT_DELIVERED_SHA256)"
  install -d -m 0700 "$(dirname "$AGENT_DELIVERY_PATH")"
  waited=0
  until [ -f "$AGENT_DELIVERY_PATH" ] &&
      echo "$AGENT_DELIVERED_SHA256  $AGENT_DELIVERY_PATH" | sha256sum -c - >/dev/null 2>&1; do
    [ "$waited" -lt "$AGENT_DELIVERY_WAIT" ] || fail "the launcher did not deliver the agent within ${AGENT_DELIVERY_WAIT}s"
    sleep 1; waited=$((waited + 1))
  done
  step "agent delivered by the launcher, verified (waited ${waited}s)"
  mv "$AGENT_DELIVERY_PATH" "$BIN/lambda-gha.download"
else
  fail "no lambda-gha agent for linux-$RUNNER_ARCH in this release"
fi
chmod 0755 "$BIN/lambda-gha.download"
mv "$BIN/lambda-gha.download" "$BIN/lambda-gha"

# --- job hooks: tell the agent at once when a job starts or ends ------------------------------
for event in started completed; do
  printf '#!/bin/sh\nexec %s agent hook job-%s --runner "${LAMBDA_GHA_RUNNER:-0}"\n' "$BIN/lambda-gha" "$event" > "$HOOKS/job-$event.sh"
  chmod 0755 "$HOOKS/job-$event.sh"
done

{{user_script}}

# --- the health gate: every GPU answers (and the user's gpu_check passes) before any runner ----
step "checking the GPUs"
HEALTHY=1
"$BIN/lambda-gha" agent gate --config "$ETC/agent.json" || HEALTHY=0

# --- the agent owns the machine's life from here, restarted if it dies --------------------------
step "starting the agent"
if [ -d /run/systemd/system ]; then
  cat > /etc/systemd/system/lambda-gha-agent.service <<UNIT
[Unit]
Description=lambda-gha agent: ends this machine when its runners are done
[Service]
ExecStart=$BIN/lambda-gha agent run --config $ETC/agent.json
Restart=always
RestartSec=2
StandardOutput=append:/var/log/lambda-gha-agent.log
StandardError=append:/var/log/lambda-gha-agent.log
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now --quiet lambda-gha-agent.service
else
  setsid nohup bash -c 'while :; do "$1" agent run --config "$2"; sleep 2; done' lambda-gha-agent \
    "$BIN/lambda-gha" "$ETC/agent.json" >> /var/log/lambda-gha-agent.log 2>&1 < /dev/null &
fi
if [ "$HEALTHY" = 0 ]; then
  # Unused credentials go now; the agent reports the failure and ends the machine.
  rm -f "$ETC/registration.token" "$ETC"/runner-*.jit
  fail "the GPU health gate failed: no runner starts; the agent ends this machine"
fi

# --- jobs' caches on the volume: the runner user's, so that its jobs can write them ------------
JOB_CACHE=
if [ -n "$CACHE" ]; then
  if install -d -m 0755 "$CACHE/jobs" 2>/dev/null &&
      install -d -m 0755 -o "$RUNNER_USER" -g "$RUNNER_USER" "$CACHE/jobs/uv" "$CACHE/jobs/pip" \
        "$CACHE/jobs/huggingface" "$CACHE/jobs/torch" 2>/dev/null; then
    JOB_CACHE="$CACHE/jobs"
    step "cache: jobs get UV_CACHE_DIR, PIP_CACHE_DIR, HF_HOME and TORCH_HOME under $JOB_CACHE"
  else
    step "cache: cannot make the jobs' cache directories; jobs run without them"
  fi
fi

# --- runners, as the runner user ---------------------------------------------------------------
# No credential goes on a command line (where `ps` shows it) or into the runner's environment
# (which every process of its user can read): a JIT configuration is unpacked into the files the
# runner would write from it itself, a registration token goes to config.sh through the
# ACTIONS_RUNNER_INPUT_TOKEN variable, which the runner reads and drops (actions/runner
# src/Runner.Listener/CommandSettings.cs), while no job runs yet.
for i in "${!RUNNER_NAMES[@]}"; do
  dir="$RUNNERS/runner-$i"
  install -d -m 0755 -o "$RUNNER_USER" -g "$RUNNER_USER" "$dir"
  tar -xzf "$TARBALL" -C "$dir" --no-same-owner
  # Read literally by the runner (KEY=VALUE lines): no quotes, no expansions.
  {
    echo "ACTIONS_RUNNER_HOOK_JOB_STARTED=$HOOKS/job-started.sh"
    echo "ACTIONS_RUNNER_HOOK_JOB_COMPLETED=$HOOKS/job-completed.sh"
    echo "LAMBDA_GHA_RUNNER=$i"
    if [ -n "${RUNNER_GPUS[$i]}" ]; then echo "CUDA_VISIBLE_DEVICES=${RUNNER_GPUS[$i]}"; fi
    # Jobs' package and model caches, shared by every machine of the region.
    if [ -n "$JOB_CACHE" ]; then
      echo "UV_CACHE_DIR=$JOB_CACHE/uv"
      echo "PIP_CACHE_DIR=$JOB_CACHE/pip"
      echo "HF_HOME=$JOB_CACHE/huggingface"
      echo "TORCH_HOME=$JOB_CACHE/torch"
    fi
  } > "$dir/.env"
  if [ -n "${RUNNER_GPUS[$i]}" ]; then step "runner ${RUNNER_NAMES[$i]} gets GPU(s) ${RUNNER_GPUS[$i]}"; fi
  if [ "$RUNNER_MODE" = jit ]; then
    "$BIN/lambda-gha" agent unpack-jit --from "$ETC/runner-$i.jit" --into "$dir"
  fi
  chown -R "$RUNNER_USER:$RUNNER_USER" "$dir"
  if [ "$RUNNER_MODE" = reusable ]; then
    step "configuring runner ${RUNNER_NAMES[$i]}"
    # Every runner is configured before any starts: no job runs while the token is in use.
    # Only this launch's labels: no `self-hosted`, `Linux`, `X64` that any job could target.
    # The token reaches config.sh on stdin, into its variable: never on a command line.
    (cd "$dir" && as_runner bash -c 'IFS= read -r ACTIONS_RUNNER_INPUT_TOKEN
      export ACTIONS_RUNNER_INPUT_TOKEN; exec "$@" < /dev/null' config "$dir/config.sh" --unattended --replace \
      --url "$REGISTRATION_URL" --name "${RUNNER_NAMES[$i]}" --labels "${RUNNER_LABELS[$i]}" \
      --no-default-labels ${RUNNER_GROUP:+--runnergroup "$RUNNER_GROUP"} \
      --work _work < "$ETC/registration.token" > "$dir/config.log" 2>&1) || fail "runner $i did not register (see $dir/config.log)"
  fi
done
rm -f "$ETC/registration.token"
for i in "${!RUNNER_NAMES[@]}"; do
  dir="$RUNNERS/runner-$i"
  step "starting runner ${RUNNER_NAMES[$i]}"
  (cd "$dir" && as_runner nohup "$dir/run.sh" > "$dir/runner.log" 2>&1 < /dev/null &)
done
# Unpacked where each runner reads it.
rm -f "$ETC"/runner-*.jit
step "boot complete"

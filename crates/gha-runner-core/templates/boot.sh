#!/bin/bash
# lambda-gha boot script, rendered for one machine (version: LAMBDA_GHA_VERSION below).
# It creates an unprivileged runner user, fetches the latest GitHub runner for this CPU,
# fetches the lambda-gha agent of the same version (checksum-verified, or built from the
# action's commit when that has no release), starts
# {{runner_count}} runner(s), and hands the machine's life to the agent.
#
# Secrets (runner credentials, the agent's configuration) are written to root-only files
# below and never echoed: do not add `set -x` to this script.
set -euo pipefail
umask 077

# Under lambda-cloud-sim the script runs in a sandbox directory instead of on a machine.
ROOT="${LAMBDA_SIM_SANDBOX:-}"
LOG="$ROOT/var/log/lambda-gha-boot.log"
mkdir -p "$(dirname "$LOG")"
exec > >(tee -a "$LOG") 2>&1
step() { printf '[lambda-gha boot %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { step "FAILED: $*"; exit 1; }
trap 'fail "line $LINENO exited with status $?"' ERR

# --- configuration ------------------------------------------------------------------------
LAMBDA_GHA_VERSION={{version}}
RUN_LABEL={{run_label}}
MACHINE_TAG={{machine_tag}}
RUNNER_MODE={{runner_mode}}
REGISTRATION_URL={{registration_url}}
RUNNER_RELEASES_API={{runner_releases_api}}
RUNNER_DOWNLOAD_BASE={{runner_download_base}}
AGENT_X86_64_URL={{agent_x86_64_url}}
AGENT_X86_64_SHA256={{agent_x86_64_sha256}}
AGENT_AARCH64_URL={{agent_aarch64_url}}
AGENT_AARCH64_SHA256={{agent_aarch64_sha256}}
AGENT_SOURCE_REPO={{agent_source_repo}}
AGENT_SOURCE_REV={{agent_source_rev}}
RUNNER_USER=runner
GRANT_SUDO={{grant_sudo}}
GRANT_DOCKER={{grant_docker}}
RUNNER_NAMES=({{runner_names}})
RUNNER_LABELS=({{runner_labels}})
# Each runner's GPUs (CUDA_VISIBLE_DEVICES); empty: it sees every GPU.
RUNNER_GPUS=({{runner_gpus}})

ETC="$ROOT/etc/lambda-gha"
BIN="$ROOT/usr/local/bin"
HOOKS="$ROOT/usr/local/lib/lambda-gha"
RUNNERS="$ROOT/home/$RUNNER_USER"
mkdir -p "$ETC" "$BIN" "$HOOKS" "$RUNNERS"
chmod 0700 "$ETC"
step "machine $MACHINE_TAG of $RUN_LABEL, lambda-gha $LAMBDA_GHA_VERSION, ${#RUNNER_NAMES[@]} runner(s)"

# --- secrets: root-only files ---------------------------------------------------------------
{{secrets}}

# --- the runner user --------------------------------------------------------------------------
as_runner() { if [ -n "$ROOT" ]; then "$@"; else sudo -u "$RUNNER_USER" -H "$@"; fi; }
if [ -z "$ROOT" ]; then
  id "$RUNNER_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$RUNNER_USER"
  # The runner user gets sudo or docker only when asked: either can read the agent's API key.
  if [ "$GRANT_SUDO" = 1 ]; then
    echo "$RUNNER_USER ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/90-lambda-gha-runner
    chmod 0440 /etc/sudoers.d/90-lambda-gha-runner
  fi
  if [ "$GRANT_DOCKER" = 1 ] && getent group docker >/dev/null; then
    usermod -aG docker "$RUNNER_USER"
  fi
fi

# --- the GitHub runner: latest release for this CPU, checksum from its release notes ---------
case "$(uname -m)" in
  x86_64|amd64) RUNNER_ARCH=x64; AGENT_URL="$AGENT_X86_64_URL"; AGENT_SHA256="$AGENT_X86_64_SHA256" ;;
  aarch64|arm64) RUNNER_ARCH=arm64; AGENT_URL="$AGENT_AARCH64_URL"; AGENT_SHA256="$AGENT_AARCH64_SHA256" ;;
  *) fail "unsupported CPU $(uname -m)" ;;
esac
step "fetching the latest GitHub runner for linux-$RUNNER_ARCH"
RELEASE="$(curl -fsSL --retry 5 --retry-delay 2 "$RUNNER_RELEASES_API")"
RUNNER_VERSION="$(printf '%s' "$RELEASE" | sed -n 's/.*"tag_name": *"v\([0-9.]*\)".*/\1/p' | head -n 1)"
RUNNER_SHA256="$(printf '%s' "$RELEASE" | sed -n "s/.*BEGIN SHA linux-$RUNNER_ARCH -->\([0-9a-f]\{64\}\)<!-- END SHA.*/\1/p" | head -n 1)"
[ -n "$RUNNER_VERSION" ] || fail "no runner version in $RUNNER_RELEASES_API"
[ -n "$RUNNER_SHA256" ] || fail "no linux-$RUNNER_ARCH checksum in the v$RUNNER_VERSION release notes"
TARBALL="$RUNNERS/actions-runner-linux-$RUNNER_ARCH-$RUNNER_VERSION.tar.gz"
curl -fsSL --retry 5 --retry-delay 2 -o "$TARBALL" \
  "$RUNNER_DOWNLOAD_BASE/v$RUNNER_VERSION/actions-runner-linux-$RUNNER_ARCH-$RUNNER_VERSION.tar.gz"
echo "$RUNNER_SHA256  $TARBALL" | sha256sum -c - >/dev/null || fail "runner v$RUNNER_VERSION checksum mismatch"
step "runner v$RUNNER_VERSION verified"

# --- the agent: this project's version, checksum pinned at render time ------------------------
if [ -n "$AGENT_URL" ]; then
  step "fetching the lambda-gha agent $LAMBDA_GHA_VERSION"
  curl -fsSL --retry 5 --retry-delay 2 -o "$BIN/lambda-gha.download" "$AGENT_URL"
  echo "$AGENT_SHA256  $BIN/lambda-gha.download" | sha256sum -c - >/dev/null || fail "agent checksum mismatch"
elif [ -n "$AGENT_SOURCE_REV" ]; then
  # No release for the action's ref (a branch, a commit, a fork): build that exact commit.
  step "building the lambda-gha agent from $AGENT_SOURCE_REPO at $AGENT_SOURCE_REV"
  export CARGO_HOME="$ROOT/opt/lambda-gha/cargo" RUSTUP_HOME="$ROOT/opt/lambda-gha/rustup"
  if [ ! -x "$CARGO_HOME/bin/cargo" ]; then
    curl -fsSL --proto '=https' --tlsv1.2 https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path >/dev/null
  fi
  "$CARGO_HOME/bin/cargo" install --quiet --locked --git "$AGENT_SOURCE_REPO" --rev "$AGENT_SOURCE_REV" \
    --root "$ROOT/opt/lambda-gha/agent" --no-default-features lambda-gha-cli || fail "building the agent failed"
  cp "$ROOT/opt/lambda-gha/agent/bin/lambda-gha" "$BIN/lambda-gha.download"
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

# --- the agent owns the machine's life from here -----------------------------------------------
step "starting the agent"
nohup setsid "$BIN/lambda-gha" agent run --config "$ETC/agent.json" >> "$ROOT/var/log/lambda-gha-agent.log" 2>&1 < /dev/null &
if [ "$HEALTHY" = 0 ]; then
  # Unused credentials go now; the agent reports the failure and ends the machine.
  rm -f "$ETC/registration.token" "$ETC"/runner-*.jit
  fail "the GPU health gate failed: no runner starts; the agent ends this machine"
fi

# --- runners ----------------------------------------------------------------------------------
for i in "${!RUNNER_NAMES[@]}"; do
  dir="$RUNNERS/runner-$i"
  mkdir -p "$dir"
  tar -xzf "$TARBALL" -C "$dir"
  cat > "$dir/.env" <<ENV
ACTIONS_RUNNER_HOOK_JOB_STARTED=$HOOKS/job-started.sh
ACTIONS_RUNNER_HOOK_JOB_COMPLETED=$HOOKS/job-completed.sh
LAMBDA_GHA_RUNNER=$i
ENV
  if [ -n "${RUNNER_GPUS[$i]}" ]; then
    echo "CUDA_VISIBLE_DEVICES=${RUNNER_GPUS[$i]}" >> "$dir/.env"
    step "runner ${RUNNER_NAMES[$i]} gets GPU(s) ${RUNNER_GPUS[$i]}"
  fi
  if [ -z "$ROOT" ]; then chown -R "$RUNNER_USER:$RUNNER_USER" "$dir"; fi
  if [ "$RUNNER_MODE" = jit ]; then
    step "starting JIT runner ${RUNNER_NAMES[$i]}"
    # Read here, not in the background command: the file is removed below, maybe first.
    jit="$(cat "$ETC/runner-$i.jit")"
    (cd "$dir" && as_runner nohup ./run.sh --jitconfig "$jit" > "$dir/runner.log" 2>&1 < /dev/null &)
  else
    step "configuring runner ${RUNNER_NAMES[$i]}"
    (cd "$dir" && as_runner ./config.sh --unattended --replace --url "$REGISTRATION_URL" \
      --token "$(cat "$ETC/registration.token")" --name "${RUNNER_NAMES[$i]}" \
      --labels "${RUNNER_LABELS[$i]}" --work _work > "$dir/config.log" 2>&1) || fail "runner $i did not register (see $dir/config.log)"
    (cd "$dir" && as_runner nohup ./run.sh > "$dir/runner.log" 2>&1 < /dev/null &)
  fi
done
# Credentials are single-use: runners have read theirs by now.
rm -f "$ETC/registration.token" "$ETC"/runner-*.jit
step "boot complete"

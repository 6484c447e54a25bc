#!/bin/bash
# Gets the lambda-gha-action binary for this runner: the release of this action's version when
# the action runs at that release (its tag, or the commit the release was built from), checked
# against the release's SHA256SUMS; otherwise built from the action's own checkout with cargo
# (branches, commits, forks), with the agent for the machines (`agent-path`, `agent-sha256`).
# Writes `path`, and for a release `sha256sums` and `release-url`, to $GITHUB_OUTPUT.
#
# Environment: ACTION_PATH (the action's checkout), ACTION_REF (github.action_ref),
# ACTION_COMMIT (the action_ref input: a commit SHA), ACTION_REPOSITORY (else
# LAMBDA_GHA_ACTION_REPOSITORY), RUNNER_ARCH_NAME (X64 or ARM64), SERVER_URL.
set -euo pipefail

fail() { echo "::error title=lambda-gha setup::$*"; exit 1; }

version="$(sed -n 's/^version = "\([^"]*\)".*/\1/p' "$ACTION_PATH/Cargo.toml" | head -n 1)"
[ -n "$version" ] || fail "no version in $ACTION_PATH/Cargo.toml"
case "${RUNNER_ARCH_NAME:-X64}" in
  X64) target=x86_64-unknown-linux-musl ;;
  ARM64) target=aarch64-unknown-linux-musl ;;
  *) fail "runner architecture ${RUNNER_ARCH_NAME} is not supported: run this step on Linux X64 or ARM64" ;;
esac
tag="v$version"
# An action used by path (runner.yml checks itself out) has no github.action_repository:
# runner.yml names the repository it checked out in LAMBDA_GHA_ACTION_REPOSITORY.
repository="${ACTION_REPOSITORY:-${LAMBDA_GHA_ACTION_REPOSITORY:-}}"
[ -n "$repository" ] || repository=lambda-gha/lambda-gha
source_repo="${SERVER_URL:-https://github.com}/$repository"
base="$source_repo/releases/download/$tag"
dir="${RUNNER_TEMP:-/tmp}/lambda-gha-$version"
mkdir -p "$dir"

fetch() { curl -fsSL --retry 3 --retry-delay 1 -o "$2" "$base/$1"; }

use_release=false
if [ "${ACTION_REF:-}" = "$tag" ]; then
  use_release=true
elif [[ "${ACTION_COMMIT:-}" =~ ^[0-9a-f]{40}$ ]] && fetch COMMIT "$dir/COMMIT" 2>/dev/null \
  && [ "$(tr -d '[:space:]' < "$dir/COMMIT")" = "$ACTION_COMMIT" ]; then
  use_release=true
fi

if $use_release; then
  asset="lambda-gha-action-$target"
  fetch SHA256SUMS "$dir/SHA256SUMS" || fail "cannot download $base/SHA256SUMS"
  fetch "$asset" "$dir/$asset" || fail "cannot download $base/$asset"
  expected="$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1 }' "$dir/SHA256SUMS")"
  [ -n "$expected" ] || fail "$asset is not listed in the release's SHA256SUMS"
  actual="$(sha256sum "$dir/$asset" | cut -d' ' -f1)"
  [ "$expected" = "$actual" ] || fail "checksum mismatch for $asset: expected $expected, got $actual"
  chmod 0755 "$dir/$asset"
  echo "lambda-gha-action $version from the release, checksum verified"
  {
    echo "path=$dir/$asset"
    echo "sha256sums=$dir/SHA256SUMS"
    echo "release-url=$base"
  } >> "$GITHUB_OUTPUT"
  exit 0
fi

echo "no release matches this ref (${ACTION_REF:-${ACTION_COMMIT:-unknown}}): building lambda-gha-action, and the agent the machines get, from the action's checkout"
if ! command -v cargo >/dev/null 2>&1; then
  curl -fsSL --proto '=https' --tlsv1.2 https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
  export PATH="$HOME/.cargo/bin:$PATH"
fi
target_dir="${CARGO_TARGET_DIR:-$ACTION_PATH/target}"
cargo build --quiet --release --locked -p lambda-gha-action --manifest-path "$ACTION_PATH/Cargo.toml" \
  --target-dir "$target_dir" || fail "building lambda-gha-action failed"
# The agent, static for any Linux x86_64 machine, built here once: the launcher delivers it to
# each machine over SSH, so no GPU machine spends billed minutes compiling.
agent_target=x86_64-unknown-linux-musl
rustup target add "$agent_target" >/dev/null 2>&1 || fail "cannot add the Rust target $agent_target"
if ! command -v musl-gcc >/dev/null 2>&1; then
  { sudo apt-get update -qq && sudo apt-get install -y -qq musl-tools; } >/dev/null ||
    fail "cannot install musl-tools (musl-gcc) to build the agent"
fi
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked -p lambda-gha-cli \
  --target "$agent_target" --manifest-path "$ACTION_PATH/Cargo.toml" --target-dir "$target_dir" ||
  fail "building the lambda-gha agent failed"
agent="$target_dir/$agent_target/release/lambda-gha"
{
  echo "path=$target_dir/release/lambda-gha-action"
  echo "agent-path=$agent"
  echo "agent-sha256=$(sha256sum "$agent" | cut -d' ' -f1)"
} >> "$GITHUB_OUTPUT"

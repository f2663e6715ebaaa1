#!/usr/bin/env bash
# `npm test`: every tier, with what the tiers need installed first where this machine allows.
#   - npm dependencies, the web console and the compiled CLI (scripts/ensure-deps.mjs);
#   - Debian packages, as root: promtool (prometheus) for the alert rules, chromium for the console's
#     browser tests, curl for the Qdrant snapshot script; the test cluster's own (containerd, runc,
#     CNI plugins, ipset, debootstrap for the images' base) are installed by cluster:up;
#   - the test cluster (built from source with Go the first time, then cached), started for the run
#     and stopped after; a cluster already running (someone else's) is used and left running.
# A need this script cannot meet (not root, no Go) is said here; the tiers that need it then skip
# with the reason and the install command, or fail under CI=true. DIATONIC_CLUSTER_TESTS=0 leaves the
# cluster tier out (npm run test:unit runs the tests alone).
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/ensure-deps.mjs

debian_packages=()
command -v promtool >/dev/null 2>&1 || debian_packages+=(prometheus)
[ -x /usr/bin/chromium ] || debian_packages+=(chromium)
command -v curl >/dev/null 2>&1 || debian_packages+=(curl)
if [ "${#debian_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    as_root=""; [ "$(id -u)" = 0 ] || as_root="sudo"
    echo "diatonic test: installing Debian packages: ${debian_packages[*]}" >&2
    $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends "${debian_packages[@]}" >/dev/null
  else
    echo "diatonic test: not root: the tiers that need ${debian_packages[*]} skip (install: sudo apt-get install -y ${debian_packages[*]})" >&2
  fi
fi

cluster_started=""
cleanup() { if [ -n "$cluster_started" ]; then npm run --silent cluster:down || true; fi; }
trap cleanup EXIT
if [ "${DIATONIC_CLUSTER_TESTS:-1}" != "0" ]; then
  if command -v go >/dev/null 2>&1; then
    cluster_up_result="$(mktemp)"
    DIATONIC_CLUSTER_UP_RESULT="$cluster_up_result" npm run --silent cluster:up
    [ "$(cat "$cluster_up_result")" = started ] && cluster_started=1
    rm -f "$cluster_up_result"
  else
    echo "diatonic test: no Go toolchain: the cluster tier skips (install Go >= 1.26 from go.dev; the cluster is built from source)" >&2
  fi
fi

npm run --silent lint
npm run --silent typecheck
node scripts/run-tests.mjs

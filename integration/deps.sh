#!/usr/bin/env bash
# Idempotent installer of the external programs the tests and scripts need.
# Usage: integration/deps.sh anvil|solc|libclang|all ...
# Each dependency is one function; a dependency already installed is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# anvil dev chain: a static binary shipped inside an npm package, pinned by integration/package-lock.json.
dep_anvil() {
    local bin="$ROOT/integration/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    if [ -x "$bin" ]; then
        return 0
    fi
    echo "deps.sh: installing anvil (npm @foundry-rs/anvil-linux-amd64, pinned) into integration/node_modules" >&2
    (cd "$ROOT/integration" && npm ci --no-audit --no-fund --loglevel=error >&2)
    [ -x "$bin" ] || { echo "deps.sh: anvil binary missing after install: $bin" >&2; exit 1; }
}

# solc-js compiler, pinned by contracts/package-lock.json (used by contracts/compile.js).
dep_solc() {
    if [ -f "$ROOT/contracts/node_modules/solc/package.json" ]; then
        return 0
    fi
    echo "deps.sh: installing solc-js (npm solc, pinned) into contracts/node_modules" >&2
    (cd "$ROOT/contracts" && npm ci --no-audit --no-fund --loglevel=error >&2)
}

# libclang for bindgen, which the rocksdb crate's build script runs (Debian package libclang-dev).
dep_libclang() {
    if dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "install ok installed"; then
        return 0
    fi
    echo "deps.sh: installing libclang-dev (apt) for the rocksdb crate's build" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq libclang-dev >&2
}

if [ $# -eq 0 ]; then
    echo "usage: $0 anvil|solc|libclang|all ..." >&2
    exit 2
fi
for dep in "$@"; do
    case "$dep" in
        anvil) dep_anvil ;;
        solc) dep_solc ;;
        libclang) dep_libclang ;;
        all) dep_libclang; dep_anvil; dep_solc ;;
        *) echo "deps.sh: unknown dependency '$dep' (known: anvil solc libclang all)" >&2; exit 2 ;;
    esac
done

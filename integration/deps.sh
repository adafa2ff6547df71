#!/usr/bin/env bash
# Idempotent installer of the external programs the tests and scripts need.
# Usage: integration/deps.sh anvil|solc|all ...
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

if [ $# -eq 0 ]; then
    echo "usage: $0 anvil|solc|all ..." >&2
    exit 2
fi
for dep in "$@"; do
    case "$dep" in
        anvil) dep_anvil ;;
        solc) dep_solc ;;
        all) dep_anvil; dep_solc ;;
        *) echo "deps.sh: unknown dependency '$dep' (known: anvil solc all)" >&2; exit 2 ;;
    esac
done

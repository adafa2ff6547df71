#!/usr/bin/env bash
# Idempotent installer of the external programs the tests and scripts need.
# Usage: integration/deps.sh prosody|lua-unbound|ejabberd|libclang|anvil|solc|chromium|playwright|schemathesis|all ...
# Each dependency is one function; a dependency already installed is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# apt-get install, running `apt-get update` first only when the package lists are empty
# (a fresh machine) or the install fails on a stale list.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
        apt-get update -qq >&2
    fi
    if ! apt-get install -y -qq --no-install-recommends "$@" >&2; then
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "$@" >&2
    fi
}

# Prosody XMPP server (Debian package); the tests run private instances, never the system service.
dep_prosody() {
    if command -v prosody >/dev/null 2>&1 && command -v prosodyctl >/dev/null 2>&1; then
        return 0
    fi
    echo "deps.sh: installing prosody (apt)" >&2
    apt_install prosody
    command -v prosody >/dev/null 2>&1 || { echo "deps.sh: prosody missing after install" >&2; exit 1; }
}

# lua-unbound: Prosody's resolver, which reads a private hosts file (two federating servers on
# loopback without DNS or a change to /etc). Without it Prosody ignores hosts files.
dep_lua_unbound() {
    dep_prosody
    if dpkg-query -W -f='${Status}' lua-unbound 2>/dev/null | grep -q "install ok installed"; then
        return 0
    fi
    echo "deps.sh: installing lua-unbound (apt)" >&2
    apt_install lua-unbound
}

# ejabberd 23.01 (Debian; ~44 packages with Erlang): the extauth login checks. Its service is
# not started here (tests run a private instance).
dep_ejabberd() {
    if command -v ejabberdctl >/dev/null 2>&1; then
        return 0
    fi
    echo "deps.sh: installing ejabberd (apt)" >&2
    apt_install ejabberd
}

# libclang for bindgen, needed to build the rocksdb crate. bindgen's loader (clang-sys) looks for
# libclang.so, libclang-N.so or libclang.so.N / libclang-N.so.N; it ignores libclang-cpp, which a
# fresh machine image ships without libclang itself, so only those names count here.
have_libclang() {
    local dirs=(/usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib)
    [ -n "${LIBCLANG_PATH:-}" ] && dirs=("$LIBCLANG_PATH" "${dirs[@]}")
    local d f
    for d in "${dirs[@]}"; do
        for f in "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.*; do
            [ -e "$f" ] && return 0
        done
    done
    return 1
}

dep_libclang() {
    if have_libclang; then
        return 0
    fi
    echo "deps.sh: installing libclang-dev (apt)" >&2
    apt_install libclang-dev
    have_libclang || { echo "deps.sh: libclang missing after installing libclang-dev" >&2; exit 1; }
}

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

# Chromium for the desktop page's browser test (Debian's package; nothing downloads a browser)
# and npm playwright-core to drive it, pinned by integration/package-lock.json.
dep_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    echo "deps.sh: installing chromium (apt)" >&2
    apt_install chromium
    [ -x /usr/bin/chromium ] || { echo "deps.sh: /usr/bin/chromium missing after install" >&2; exit 1; }
}

dep_playwright() {
    if [ -f "$ROOT/integration/node_modules/playwright-core/package.json" ]; then
        return 0
    fi
    echo "deps.sh: installing playwright-core (npm, pinned) into integration/node_modules" >&2
    (cd "$ROOT/integration" && npm ci --no-audit --no-fund --loglevel=error >&2)
}

# schemathesis and openapi-spec-validator (PyPI, pinned) in a virtual environment of their own,
# for the API fuzz test and the OpenAPI document's validation.
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
dep_schemathesis() {
    local venv="$ROOT/integration/.venv"
    if [ -x "$venv/bin/schemathesis" ] && [ -x "$venv/bin/openapi-spec-validator" ] \
        && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        return 0
    fi
    if ! /usr/bin/python3 -m venv --help >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
        echo "deps.sh: installing python3-venv (apt)" >&2
        apt_install python3-venv
    fi
    echo "deps.sh: installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator (pip) into integration/.venv" >&2
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
        "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION" >&2
    [ -x "$venv/bin/schemathesis" ] || { echo "deps.sh: schemathesis missing after install" >&2; exit 1; }
}

if [ $# -eq 0 ]; then
    echo "usage: $0 prosody|lua-unbound|ejabberd|libclang|anvil|solc|chromium|playwright|schemathesis|all ..." >&2
    exit 2
fi
for dep in "$@"; do
    case "$dep" in
        prosody) dep_prosody ;;
        lua-unbound) dep_lua_unbound ;;
        ejabberd) dep_ejabberd ;;
        libclang) dep_libclang ;;
        anvil) dep_anvil ;;
        solc) dep_solc ;;
        chromium) dep_chromium ;;
        playwright) dep_playwright ;;
        schemathesis) dep_schemathesis ;;
        all) dep_prosody; dep_lua_unbound; dep_libclang; dep_anvil; dep_solc; dep_chromium; dep_playwright; dep_schemathesis ;;
        *) echo "deps.sh: unknown dependency '$dep' (known: prosody lua-unbound ejabberd libclang anvil solc chromium playwright schemathesis all)" >&2; exit 2 ;;
    esac
done

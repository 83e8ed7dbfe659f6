#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (config: deny.toml at the repo root):
# RustSec advisories (vulnerable, unmaintained, unsound, yanked), licenses,
# bans (duplicate versions warn, wildcards deny) and sources (crates.io only)
# of the main workspace.
#
#   bash tests/supply_chain.sh
#   SUPPLY_CHAIN_ADVISORIES=skip bash tests/supply_chain.sh   # no advisory DB reachable
#
# Cases, each printed as `PASS name` / `FAIL name: why` (or `SKIP`):
#   advisories            cargo deny check advisories, with the RustSec DB
#                         fetched from github.com/rustsec/advisory-db
#                         (cargo deny fetch db). If it cannot be fetched the
#                         case FAILS, unless SUPPLY_CHAIN_ADVISORIES=skip, which
#                         prints `SKIP advisories` and a reason instead.
#   licenses, bans, sources   cargo deny check <that>.
#   unmaintained_config   offline proof that deny.toml fails on an unmaintained
#                         crate: a scratch crate depending on rustls-pemfile 2
#                         (crates.io) against a one-advisory local DB
#                         (RUSTSEC-2025-0134, "unmaintained") must make
#                         `cargo deny check advisories` fail with that id.
# cargo-deny is installed with `cargo install cargo-deny --locked` when
# missing. Ends with `supply-chain: N passed, N failed`; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT="$(pwd)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rtmpgate-supply-chain.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if ! cargo deny --version >/dev/null 2>&1; then
    log "cargo-deny missing: cargo install cargo-deny --locked"
    t0=$(date +%s)
    if ! cargo install cargo-deny --locked >&2; then
        printf 'FAIL cargo-deny: cargo install cargo-deny --locked failed\n'
        printf 'supply-chain: 0 passed, 1 failed\n'
        exit 1
    fi
    log "cargo install cargo-deny took $(($(date +%s) - t0))s"
fi
log "$(cargo deny --version)"

# check NAME: cargo deny check NAME, output in $WORK/NAME.log; shows the
# errors (and the summary line) on failure.
check() {
    local name="$1" rc=0
    timeout -s TERM -k 5 600 cargo deny --color never check "$name" >"$WORK/$name.log" 2>&1 || rc=$?
    local summary
    summary=$(grep -E '^(advisories|bans|licenses|sources) (ok|FAILED)' "$WORK/$name.log" | tail -n 1 || true)
    local warnings
    warnings=$(grep -c '^warning\[' "$WORK/$name.log" || true)
    if ((rc == 0)); then
        pass "$name${warnings:+ ($warnings warnings${summary:+, $summary})}"
        if [[ $name == bans ]] && ((warnings > 0)); then
            grep -E "^warning\[duplicate\]" "$WORK/$name.log" | sed 's/^/  /' >&2 || true
        fi
    else
        grep -E -A 12 '^error(\[|:)' "$WORK/$name.log" | head -n 80 >&2 || tail -n 40 "$WORK/$name.log" >&2
        fail "$name" "cargo deny check $name exited $rc: $(grep -E '^error' "$WORK/$name.log" | sort | uniq -c | sed 's/^ *//' | paste -sd ';' - | cut -c 1-400)"
    fi
}

# ------------------------------------------------------------ advisories ---
mode="${SUPPLY_CHAIN_ADVISORIES:-required}"
if timeout -s TERM -k 5 300 cargo deny --color never fetch db >"$WORK/fetch.log" 2>&1; then
    check advisories
else
    why=$(grep -a -m 1 'fatal:' "$WORK/fetch.log" || grep -a -m 1 -E 'ERROR|error' "$WORK/fetch.log" || true)
    why=$(cut -c 1-200 <<<"${why:-cargo deny fetch db failed}")
    if [[ $mode == skip ]]; then
        printf 'SKIP advisories: the RustSec advisory DB could not be fetched (%s); SUPPLY_CHAIN_ADVISORIES=skip\n' "$why"
    else
        fail advisories "the RustSec advisory DB could not be fetched ($why); set SUPPLY_CHAIN_ADVISORIES=skip where github.com is unreachable"
    fi
fi

# ------------------------------------------------ licenses, bans, sources ---
check licenses
check bans
check sources

# ------------------------------------------------- unmaintained_config -----
# The same [advisories] settings on a scratch crate with rustls-pemfile 2 and
# a local one-advisory DB: proves unmaintained crates fail the check, offline.
unmaintained_config() {
    local name=unmaintained_config dir="$WORK/scratch" db="$WORK/dbs" rc=0
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<'EOF'
[package]
name = "deny-scratch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
rustls-pemfile = "2"

[workspace]
EOF
    echo 'fn main() {}' >"$dir/src/main.rs"
    # deny.toml's own [advisories] table, pointed at the local DB.
    awk -v db="$db" '
        /^\[/ { in_adv = ($0 == "[advisories]") }
        in_adv { print; if ($0 == "[advisories]") print "db-path = \"" db "\"" }' \
        "$REPO_ROOT/deny.toml" >"$dir/deny.toml"
    # cargo-deny keeps the default DB in db-path/advisory-db-<hash of its URL>.
    local repo="$db/advisory-db-3157b0e258782691"
    mkdir -p "$repo/crates/rustls-pemfile"
    cat >"$repo/crates/rustls-pemfile/RUSTSEC-2025-0134.md" <<'EOF'
```toml
[advisory]
id = "RUSTSEC-2025-0134"
package = "rustls-pemfile"
date = "2025-11-28"
url = "https://github.com/rustls/pemfile/issues/61"
informational = "unmaintained"

[versions]
patched = []
```

# rustls-pemfile is unmaintained

Local stand-in for the RustSec entry, for an offline check of deny.toml.
EOF
    (cd "$repo" && git init -q -b main . && git add . &&
        git -c user.email=ci@localhost -c user.name=ci commit -q -m "local advisory") >&2 ||
        { fail "$name" "could not make the local advisory DB"; return 0; }
    if ! (cd "$dir" && timeout -s TERM -k 5 300 cargo generate-lockfile -q && cargo fetch -q) >"$WORK/$name.fetch.log" 2>&1; then
        fail "$name" "could not resolve rustls-pemfile 2 from crates.io: $(tail -n 3 "$WORK/$name.fetch.log" | paste -sd ' ' -)"
        return 0
    fi
    (cd "$dir" && timeout -s TERM -k 5 300 cargo deny --color never --offline check advisories) \
        >"$WORK/$name.log" 2>&1 || rc=$?
    local hit
    hit=$(grep -E '^error\[unmaintained\]' "$WORK/$name.log" | head -n 1 || true)
    if ((rc != 0)) && [[ -n $hit ]] && grep -q 'RUSTSEC-2025-0134' "$WORK/$name.log"; then
        log "$name: rustls-pemfile 2 -> '$hit' (RUSTSEC-2025-0134), cargo deny exited $rc"
        pass "$name"
    else
        tail -n 30 "$WORK/$name.log" >&2
        fail "$name" "cargo deny check advisories exited $rc on rustls-pemfile 2 with RUSTSEC-2025-0134 in the DB; want an error[unmaintained]"
    fi
}
unmaintained_config

printf 'supply-chain: %d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))

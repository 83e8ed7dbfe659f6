#!/usr/bin/env bash
# Writes a self-signed development certificate: DIR/dev.crt and DIR/dev.key.
# Usage: bash certs/make-dev-cert.sh [DIR] [NAME...]   (names: DNS names or IPs)
set -euo pipefail
dir=${1:-$(dirname "$0")}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
san=""
for n in "${names[@]}"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=${names[0]}" -addext "subjectAltName=${san%,}" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$dir/dev.key" -out "$dir/dev.crt" 2>/dev/null
echo "wrote $dir/dev.crt and $dir/dev.key for: ${names[*]}"

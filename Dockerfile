# syntax=docker/dockerfile:1
#
# rtmpgate container image.
#
#   docker build -t rtmpgate .
#   docker run --rm -p 8443:8443 -p 1936:1936 -p 127.0.0.1:9100:9100 \
#       -e RTMPGATE_UPSTREAM=rtmp://nginx-rtmp:1935 \
#       -e RTMPGATE_ADMIN=0.0.0.0:9100 \
#       -e RTMPGATE_TLS_CERT=/etc/rtmpgate/tls/tls.crt -e RTMPGATE_TLS_KEY=/etc/rtmpgate/tls/tls.key \
#       -v /path/to/tls:/etc/rtmpgate/tls:ro \
#       --stop-timeout 35 rtmpgate
#
# Configure it with RTMPGATE_* variables, flags after the image name, or
# `--config FILE` (see README.md). Defaults: RTMPS+RTMPTS on 8443, RTMP+RTMPT
# on 1936, upstream rtmp://127.0.0.1:1935, admin endpoint (/healthz, /readyz,
# /metrics) off until RTMPGATE_ADMIN is set (9100 by convention).
# On SIGTERM rtmpgate drains live streams for --drain-timeout (30s): give
# `docker stop` / compose `stop_grace_period` / Kubernetes
# terminationGracePeriodSeconds more than that (Docker's default is 10s).
# The process runs as UID/GID 65532, writes nothing to disk and works with a
# read-only root filesystem. Ports below 1024 need CAP_NET_BIND_SERVICE (or
# keep 8443/1936 and map them).

ARG RUST_VERSION=1.95

# ---- build ----------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole source tree (see .dockerignore); Cargo.lock is honoured exactly.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/rtmpgate /out/rtmpgate

# ---- runtime --------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/rtmpgate /usr/local/bin/rtmpgate
# "nonroot" in distroless; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# 8443 RTMPS/RTMPTS, 1936 RTMP/RTMPT, 9100 admin (when RTMPGATE_ADMIN is set).
EXPOSE 8443 1936 9100
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rtmpgate"]

# Tessera container image: build with the Rust toolchain, run on a slim Debian base.
#
# The build needs no system protoc (crates/tessera-proto/build.rs compiles the proto with
# protox) and no OpenSSL (rustls). ring and the SQLite bundled by libsqlite3-sys compile C code; rust:*-slim already
# ships gcc and libc6-dev for that.

FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, against stub sources, so that editing the service does not rebuild every
# crate. Every workspace member's manifest must load, so each gets a stub; the contract crate
# (tessera-proto) is small and is copied whole.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY crates/tessera-proto crates/tessera-proto
COPY crates/tessera/Cargo.toml crates/tessera/Cargo.toml
COPY crates/tessera/benches crates/tessera/benches
COPY crates/tessera-testkit/Cargo.toml crates/tessera-testkit/Cargo.toml
COPY crates/tessera-bench/Cargo.toml crates/tessera-bench/Cargo.toml
COPY migrations/Cargo.toml migrations/Cargo.toml
RUN mkdir -p crates/tessera/src crates/tessera-testkit/src crates/tessera-bench/src migrations/src \
    && echo 'fn main() {}' > crates/tessera/src/main.rs \
    && echo 'fn main() {}' > crates/tessera-bench/src/main.rs \
    && touch crates/tessera/src/lib.rs crates/tessera-testkit/src/lib.rs migrations/src/lib.rs \
    && cargo build --release --locked -p tessera --bin tessera \
    && rm -rf crates/tessera/src migrations/src

# The real sources; touch them so cargo sees them as newer than the stub build.
COPY crates/tessera/src crates/tessera/src
COPY migrations/src migrations/src
RUN touch crates/tessera/src/main.rs crates/tessera/src/lib.rs migrations/src/lib.rs \
    && cargo build --release --locked -p tessera --bin tessera \
    && install -m 0755 target/release/tessera /usr/local/bin/tessera

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera --shell /usr/sbin/nologin tessera \
    && install -d -o tessera -g tessera -m 0750 /var/lib/tessera
COPY --from=builder /usr/local/bin/tessera /usr/local/bin/tessera

USER tessera:tessera
WORKDIR /var/lib/tessera
ENV TESSERA_LISTEN=0.0.0.0:50051 \
    TESSERA_HTTP_LISTEN=0.0.0.0:8080 \
    TESSERA_METRICS_LISTEN=0.0.0.0:9464
# 50051: gRPC and gRPC-Web; 8080: HTTP (the Sharetribe token endpoint, /healthz, /readyz);
# 9464: Prometheus /metrics (keep it off the public network).
EXPOSE 50051 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["tessera", "health", "--addr", "127.0.0.1:50051"]
ENTRYPOINT ["tessera"]
CMD ["serve"]

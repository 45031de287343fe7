# Tessera container image: build with the Rust toolchain, run on a slim Debian base.
#
# The build needs no system protoc (build.rs compiles the proto with protox) and no OpenSSL
# (rustls). ring and the SQLite bundled by libsqlite3-sys compile C code; rust:*-slim already
# ships gcc and libc6-dev for that.

FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, against stub sources, so that editing src/ does not rebuild every crate.
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations/Cargo.toml migrations/Cargo.toml
COPY proto proto
# Cargo.toml names the bench targets, so their sources must exist for the manifest to load.
COPY benches benches
RUN mkdir -p src migrations/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs migrations/src/lib.rs \
    && cargo build --release --locked --bin tessera \
    && rm -rf src migrations/src

# The real sources; touch them so cargo sees them as newer than the stub build.
COPY src src
COPY migrations/src migrations/src
RUN touch src/main.rs src/lib.rs migrations/src/lib.rs \
    && cargo build --release --locked --bin tessera \
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
ENV TESSERA_LISTEN=0.0.0.0:50051
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["tessera", "health", "--addr", "127.0.0.1:50051"]
ENTRYPOINT ["tessera"]
CMD ["serve"]

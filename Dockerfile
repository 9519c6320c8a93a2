# syntax=docker/dockerfile:1.7
# One build, one image per service: `docker build --target auth|catalog-order|worker .`
# Static binaries (glibc, crt-static) on `scratch`: no shell, no package manager, non-root, and
# nothing written outside a mounted /tmp, so the root filesystem can be read-only.
#
# Every platform is compiled on the build machine's own (`--platform=$BUILDPLATFORM`), arm64 with
# the Debian cross toolchain: no emulation (QEMU made an arm64 Rust build take most of an hour).
# `cargo auditable` embeds the crates each binary holds, so an image SBOM (BuildKit's, syft's)
# lists them instead of an empty `scratch`. scripts/cross.sh (CI's `cross` gate) builds arm64 with
# this stage's cross settings, read from its ENV below, and smoke-tests the result under qemu-user.

# Must equal the channel of rust-toolchain.toml (scripts/ci.sh lint fails otherwise).
ARG RUST_VERSION=1.95.0
ARG CHEF_VERSION=0.1.71
ARG AUDITABLE_VERSION=0.7.7

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CHEF_VERSION
ARG AUDITABLE_VERSION
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gcc-aarch64-linux-gnu libc6-dev-arm64-cross nasm \
 && rm -rf /var/lib/apt/lists/* \
 && cargo install cargo-chef --locked --version "${CHEF_VERSION}" \
 && cargo install cargo-auditable --locked --version "${AUDITABLE_VERSION}" \
 && rustup target add x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
# nasm: libjpeg-turbo's x86 SIMD (the worker's thumbnails; arm64's NEON is C). The cross linker
# and C compiler (ring, libjpeg-turbo) for arm64; amd64 builds on amd64 use the host's.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
WORKDIR /src

# The dependency graph alone, so the next stage's dependency layer is cached apart from source.
FROM --platform=$BUILDPLATFORM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM --platform=$BUILDPLATFORM chef AS builder
ARG TARGETARCH=amd64
# crt-static needs an explicit target (build scripts and proc-macros stay dynamic).
RUN case "${TARGETARCH}" in \
      amd64) echo x86_64-unknown-linux-gnu > /target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /target ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac
ENV RUSTFLAGS="-C target-feature=+crt-static" SQLX_OFFLINE=true
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --target "$(cat /target)" --recipe-path recipe.json
COPY . .
ARG GIT_REVISION=unknown
ENV STOREFRONT_REVISION=${GIT_REVISION}
RUN cargo auditable build --release --locked --target "$(cat /target)" \
      --bin auth --bin catalog-order --bin worker \
 && mkdir /out \
 && cp "target/$(cat /target)/release/auth" "target/$(cat /target)/release/catalog-order" \
       "target/$(cat /target)/release/worker" /out/

FROM scratch AS base
COPY --from=chef /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The distroless "nonroot" ids; the chart sets the same in its securityContext.
USER 65532:65532
# Containers listen on 8080 (HTTP) and 9090 (metrics) whatever the service (docs/design.md §3).
ENV APP_ENV=prod LOG_FORMAT=json HTTP_ADDR=0.0.0.0:8080 METRICS_ADDR=0.0.0.0:9090
EXPOSE 8080 9090

FROM base AS auth
COPY --from=builder /out/auth /auth
ENTRYPOINT ["/auth"]

FROM base AS catalog-order
COPY --from=builder /out/catalog-order /catalog-order
ENTRYPOINT ["/catalog-order"]

FROM base AS worker
COPY --from=builder /out/worker /worker
ENTRYPOINT ["/worker"]

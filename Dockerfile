# The aymara-mock container image: one statically linked binary on an empty
# base (README, "Run it as a container"; maintainers: docs/container.md).
#
#   docker build -t aymara-mock .        # compiles the binary in a Rust stage, on any host
#
# CI (tests/container/run.sh) and the release (.github/workflows/release.yml)
# build the binary first with container/build-static.sh, then pack it:
#
#   podman build --format docker --target prebuilt --build-arg TARGETARCH=amd64 -t aymara-mock CONTEXT
#
# where CONTEXT holds `aymara-mock-$TARGETARCH` (amd64, arm64) and an empty `data/`.
# Build with `--format docker` under podman: OCI image configs have no HEALTHCHECK.

# Cargo.toml's version: tests/container/run.sh fails when they differ (a label
# cannot be computed from the build stage). Where the source is: the release
# passes its repository.
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/aymara-ai/aymara-mock

# The binary, compiled from the source tree (only what .dockerignore lets in).
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN bin="$(container/build-static.sh)" \
 && mkdir -p /out/data \
 && cp "$bin" "/out/aymara-mock-$(dpkg --print-architecture)"

# What every variant of the image shares: who runs it, where, and how it is checked.
FROM scratch AS base
ARG VERSION
ARG SOURCE
LABEL org.opencontainers.image.title="aymara-mock" \
      org.opencontainers.image.description="A local emulator of the Aymara AI file-upload API, with fault injection" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
# Listen beyond the container's loopback; uploads go to a fresh directory in
# the volume, removed on stop (set AYMARA_MOCK_STORAGE_DIR=/data to keep them).
ENV AYMARA_MOCK_HOST=0.0.0.0 \
    AYMARA_MOCK_PORT=8000 \
    TMPDIR=/data
EXPOSE 8000
VOLUME ["/data"]
# No user name: nothing in the binary looks one up, so no /etc/passwd.
USER 65532:65532
# The binary asks itself: no shell or curl in the image. With no URL it asks
# http://127.0.0.1:$AYMARA_MOCK_PORT, the port the server listens on.
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=3 \
    CMD ["/aymara-mock", "health"]
ENTRYPOINT ["/aymara-mock"]

# The binary built beforehand, for the platform being built (BuildKit and
# buildah set TARGETARCH).
FROM base AS prebuilt
ARG TARGETARCH
COPY aymara-mock-${TARGETARCH} /aymara-mock
COPY --chown=65532:65532 data/ /data/

# The default: the binary from the build stage.
FROM base AS source
COPY --from=build /out/aymara-mock-* /aymara-mock
COPY --from=build --chown=65532:65532 /out/data/ /data/

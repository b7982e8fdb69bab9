# ward-ca image: built from the repository root with
#   docker build -f deploy/docker/ward-ca.Dockerfile -t ghcr.io/ward/ward-ca:0.1.0 .
# Build stage: the pinned toolchain, the locked dependency set, a release build of one binary.
FROM rust:1.89-bookworm AS build
WORKDIR /src
# .git is not copied: pass the commit for ward_build_info and --version, e.g.
#   --build-arg WARD_COMMIT=$(git rev-parse --short=12 HEAD)
ARG WARD_COMMIT=unknown
ENV WARD_COMMIT=$WARD_COMMIT
COPY . .
RUN cargo build --release --locked -p ward-ca --bin ward-ca \
 && strip target/release/ward-ca

# Run stage: distroless with glibc only (ring needs libc; no shell, no package manager),
# as the non-root user 65532. Configuration and state come from mounted volumes.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ward-ca /usr/local/bin/ward-ca
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ward-ca"]
CMD ["--help"]

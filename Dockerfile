# syntax=docker/dockerfile:1
# The mua-operator image, for users and release pipelines with Docker or BuildKit:
#   docker build -t <registry>/mua-operator:$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
# The root filesystem is assembled by packaging/image/rootfs.sh, the script the daemonless build
# (packaging/image/build.sh, used by CI and the tests) runs too: the operator built without the simulator,
# glibc, libgcc_s and the CA bundle from Debian 12, user nonroot (65532), no shell. Read-only root friendly:
# nothing is written outside /tmp.

# rust:1.95.0-bookworm (Debian 12, the glibc of the runtime libraries). Bump with
# `docker buildx imagetools inspect rust:<version>-bookworm`.
ARG BUILDER=rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1

FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    bash packaging/image/rootfs.sh /rootfs

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mua-operator"]
CMD ["run"]
LABEL org.opencontainers.image.title="mua-operator" \
      org.opencontainers.image.description="Kubernetes operator for Azure Backup multi-user authorization" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/mua-dev/mua-operator" \
      org.opencontainers.image.licenses="Apache-2.0"

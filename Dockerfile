# senfenico-bridge container image.
#
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t senfenico-bridge:local .
#   docker run -e SENFENICO_WEBHOOK_KEYS=... -p 8080:8080 -v bridge-data:/data senfenico-bridge:local
#
# Where no Docker engine runs and no image can be pulled (this project's
# machines and CI), scripts/build-image builds this same file with buildah:
# it replaces the golang image below with one it makes from the host's Go
# toolchain. So the build stage runs only go, mkdir, chmod and shell
# built-ins, and the final stage starts FROM scratch: it needs no image.
#
# With no NATS_URL and no Kafka, the bridge runs its embedded NATS server and
# keeps the JetStream store in the /data volume. docker-compose.yml runs it
# against an external NATS server and Kafka instead.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, in their own layer, so editing the source does not download
# them again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# The build context has no .git, so the go command cannot record the commit;
# "senfenico-bridge version" names the one passed here (or "rev unknown").
ARG REVISION=""
# Static (no cgo): the runtime image has no C library.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildRevision=${REVISION}" -o /out/senfenico-bridge ./cmd/senfenico-bridge
# What the runtime needs besides the binary, laid out here since it has no
# shell: the nonroot user (65532, as distroless names it) for tools that map
# ids to names, a /tmp anyone may write, and an empty /data, copied below
# with its owner so that the volume Docker creates from it is writable by
# that user.
RUN mkdir -p /out/rootfs/etc /out/rootfs/tmp /out/data \
    && chmod 1777 /out/rootfs/tmp \
    && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >/out/rootfs/etc/passwd \
    && printf 'root:x:0:\nnonroot:x:65532:\n' >/out/rootfs/etc/group

FROM scratch
# The CA certificates verify TLS to NATS and Kafka (Go reads this file on Linux).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/rootfs/ /
COPY --from=build /out/senfenico-bridge /senfenico-bridge
COPY --from=build --chown=65532:65532 /out/data /data
# NATS_EMBEDDED_LISTEN: the embedded server's default (127.0.0.1) would be
# unreachable from outside the container. Only the bridge may publish on it;
# readers log in with the URL in /data/readers/<name>.url (one reader per
# service, NATS_EMBEDDED_READERS), or as "reader" with
# NATS_EMBEDDED_READER_PASSWORD when that is set.
ENV LISTEN_ADDR=:8080 \
    DATA_DIR=/data \
    NATS_EMBEDDED_LISTEN=0.0.0.0:4222
USER 65532:65532
EXPOSE 8080 4222
VOLUME /data
# The image has no curl or wget: the binary probes its own /readyz, which
# answers 200 only while the sinks can publish.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/senfenico-bridge", "healthcheck"]
ENTRYPOINT ["/senfenico-bridge"]
CMD ["serve"]

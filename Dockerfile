# senfenico-bridge container image.
#
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t senfenico-bridge .
#   docker run -e SENFENICO_WEBHOOK_KEYS=... -p 8080:8080 -v bridge-data:/data senfenico-bridge
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
# The runtime image has no shell to mkdir with; the empty directory is copied
# with its owner so that the volume Docker creates from it is writable by the
# nonroot user.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
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

# The socketfleet/sidecar image for users who build with Docker (docker build -f
# images/sidecar.Dockerfile -t socketfleet/sidecar:0.1.0 .). The same layout as images/build.sh
# makes without an engine: the release binary at /usr/local/bin/socketfleet-sidecar on a
# base with glibc and nothing else, user 65532, no shell.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p socketfleet-sidecar

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/socketfleet-sidecar /usr/local/bin/socketfleet-sidecar
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/socketfleet-sidecar"]

# The socketfleet/operator image for users who build with Docker (docker build -f
# images/operator.Dockerfile -t socketfleet/operator:0.1.0 .). The same layout as images/build.sh
# makes without an engine: the release binary at /usr/local/bin/socketfleet-operator on a
# base with glibc and nothing else, user 65532, no shell.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p socketfleet-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/socketfleet-operator /usr/local/bin/socketfleet-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/socketfleet-operator"]

# The one entry point for people and CI. `make help` lists the targets.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help deps build test lint fmt crds manifests images e2e-up e2e-down demo bench bench-autoscale bench-reshard clean

help:
	@echo "make test   install missing dependencies, build, run every test"
	@echo "make lint   rustfmt --check and clippy -D warnings"
	@echo "make demo   run a local fleet (Redis + sidecars) on this machine"
	@echo "make bench  run the benchmarks (not part of make test)"
	@echo "make bench-autoscale  only the autoscaling scenario (load doubling, then halving)"
	@echo "make bench-reshard  only the reshard scenario (3 -> 4 -> 3 shards under publishing)"
	@echo "make e2e-up / e2e-down  a real Kubernetes control plane on loopback, by hand"
	@echo "make crds   regenerate crds/, the chart's CRD template and deploy/ from operator/src/crd.rs"

deps:
	@scripts/install-deps.sh

build:
	$(CARGO) build --workspace --all-targets

# Unit tests, then L1: real redis-server processes, real sidecar binaries, real clients.
test: deps build
	scripts/manifests.sh --check
	@rm -f target/e2e-measure.log
	@set -o pipefail; $(CARGO) test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee target/test.log; \
	  status=$$?; cat target/e2e-measure.log 2>/dev/null; exit $$status
	@set -o pipefail; cd clients/typescript && npm test 2>&1 | tee ../../target/test-client.log
	@set -o pipefail; cd clients/typescript && npm run test:browser 2>&1 | tee ../../target/test-browser.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "cargo: %d passed, %d failed\n", p, f }' target/test.log
	@awk '/^# pass/ { p = $$3 } /^# fail/ { f = $$3 } END { printf "client (node --test): %d passed, %d failed\n", p, f }' target/test-client.log
	@awk '/^# pass/ { p = $$3 } /^# fail/ { f = $$3 } END { printf "browser (Chromium, node --test): %d passed, %d failed; screenshots in target/browser-artifacts/\n", p, f }' target/test-browser.log

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Generated from the Rust types; a test fails when these drift.
crds:
	$(CARGO) run -q -p socketfleet-operator --bin crdgen > crds/socketfleet.yaml
	$(CARGO) run -q -p socketfleet-operator --bin crdgen -- --chart > charts/socketfleet/templates/crd.yaml
	scripts/manifests.sh

# A control plane to poke at by hand: prints the KUBECONFIG to export.
e2e-up: deps
	e2e/control-plane.sh up

e2e-down:
	e2e/control-plane.sh down

# Image archives of the operator and the sidecar (target/images/*.tar) from the release
# binaries, without a registry or an engine: `docker load -i`, `kind load image-archive`,
# `ctr -n k8s.io images import`. `images/build.sh --help` for the test images.
images: deps
	$(CARGO) build --release -p socketfleet-operator -p socketfleet-sidecar
	images/build.sh operator sidecar

# Plain manifests for `kubectl apply`, rendered from the chart (helm built from its Go module).
manifests:
	scripts/manifests.sh

# The fleet of examples/chat.yaml on this machine: real Redis Cluster, sidecars, the pages.
DEMO_PORT ?= 8000
demo:
	@scripts/install-deps.sh --demo
	$(CARGO) build --profile demo -p socketfleet-sidecar -p socketfleet-cli
	cd clients/typescript && npm run --silent build && cp dist/index.js ../../demo/socketfleet-client.js
	target/demo/socketfleet local examples/chat.yaml --port $(DEMO_PORT) --www demo

bench: deps
	$(CARGO) build --release -p socketfleet-sidecar -p socketfleet-cli -p socketfleet-bench
	scripts/bench.sh
	scripts/bench-autoscale.sh
	scripts/bench-reshard.sh
	scripts/bench-ws-libs.sh

bench-autoscale: deps
	$(CARGO) build --release -p socketfleet-sidecar -p socketfleet-cli -p socketfleet-bench
	scripts/bench-autoscale.sh

bench-reshard: deps
	$(CARGO) build --release -p socketfleet-sidecar -p socketfleet-bench
	scripts/bench-reshard.sh

clean:
	$(CARGO) clean

# ward: the two set-up commands are `make demo` and `make test` (see README.md).
# Everything the targets need beyond the Rust toolchain is installed by scripts/ensure-tools.sh
# when missing, so a fresh machine needs nothing done by hand.

SHELL := /bin/bash
CARGO ?= cargo
WARD_CA := target/debug/ward-ca
DEV_TRUST_DOMAIN ?= ward.dev
FORCE ?=

.PHONY: all build test lint demo certs-dev tools tools-containers image kube-test bench bench-ca bench-images fuzz soak clean

# `make image`: the tag and build profile of the images (release: what you ship).
IMAGE_TAG ?= dev
IMAGE_PROFILE ?= release
# `make kube-test`: the profile of the images it builds and plays (dev: reuses `make build`).
KUBE_TEST_PROFILE ?= dev

all: build

## tools: install missing system tools used by tests and the demo (openssl, curl; unshare and mkfs.ext4 for the CA's disk fault tests; ip, nft and setpriv for the interception tests; PostgreSQL for the CA's HA state tests; promtool for the alert rules; haproxy as a PROXY-protocol receiver); grpcio and PyJWT in target/venv-python for the Workload API and OIDC interop tests
tools:
	@scripts/ensure-toolchain.sh
	@scripts/ensure-tools.sh openssl curl unshare mkfs.ext4 postgres runuser promtool haproxy systemd-analyze ip nft setpriv
	@scripts/ensure-python-clients.sh

## tools-containers: podman, runc, netavark, iptables and catatonit (make image, make kube-test)
tools-containers:
	@scripts/ensure-tools.sh podman runc netavark iptables catatonit

## build: compile every crate and binary (debug)
build:
	$(CARGO) build --workspace --bins

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@scripts/check-string-errors.sh

## test: lint, every test, deploy/ manifests and configs validated, the demo as a system test, then deploy/kubernetes as pods (kube-test)
test: tools tools-containers lint
	$(CARGO) test --workspace
	$(CARGO) build --workspace --bins
	@scripts/validate-deploy.sh
	@scripts/demo.sh > target/demo-check.log 2>&1 || { cat target/demo-check.log; echo "demo failed"; exit 1; }
	@echo "demo: every step behaved as shown (output in target/demo-check.log)"
	@$(MAKE) --no-print-directory kube-test

## image: the ward-ca, ward-proxy, ward-demo-app and ward-intercept OCI images (localhost/NAME:$(IMAGE_TAG)) from this tree and Debian's packages only, FROM scratch, nothing pulled (deploy/README.md)
image: tools-containers
	IMAGE_TAG=$(IMAGE_TAG) IMAGE_PROFILE=$(IMAGE_PROFILE) scripts/build-images.sh

## kube-test: deploy/kubernetes run as pods with podman (CA, two demo workloads and an intruder across pods) on a network of its own; KUBE_TEST_PROFILE=release plays the images `make image` ships
kube-test: tools-containers
	IMAGE_TAG=kube-test IMAGE_PROFILE=$(KUBE_TEST_PROFILE) scripts/build-images.sh
	WARD_IMAGE_TAG=kube-test $(CARGO) test -p ward-e2e --test images --test kube -- --ignored

## demo: create a CA, sign a workload CSR, verify the result with openssl
demo: tools build
	@scripts/demo.sh

## certs-dev: generate the development CA in certs-dev/ca (FORCE=1 replaces it)
certs-dev: build
	$(WARD_CA) init --dir certs-dev/ca --trust-domain $(DEV_TRUST_DOMAIN) $(if $(FORCE),--force,)

## bench-ca: CA issuance and JWT-SVID benchmarks, then Workload API latency (release build; not part of make test)
bench-ca: tools
	$(CARGO) bench -p ward-ca --bench ca
	$(CARGO) bench -p ward-proxy --bench workload_api

## bench-images: the images' sizes, a container's start, and the CA's and a sidecar's time from `podman run` to ready (after make image; not part of make test)
bench-images: tools-containers
	IMAGE_TAG=$(IMAGE_TAG) scripts/bench-images.sh

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each (default 60; nightly and cargo-fuzz installed when missing; not part of make test)
fuzz:
	@bash scripts/fuzz.sh

## soak: 10,000 connections with traffic for 10 minutes while certificates renew every minute; errors 0, RSS and descriptors flat (not part of make test)
soak: tools
	bash scripts/soak.sh

## bench: ward-proxy vs direct, stunnel and HAProxy; rewrites docs/benchmarks.md (not part of make test)
bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean

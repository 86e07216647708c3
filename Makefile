# CoWork OS appliance — developer entry points.
#   make run    start the appliance in dev mode (no root needed; state in ./.cowork)
#   make test   install what the tests need (when root), then fmt, clippy, all tests
#   make bench  print the benchmark figures
#   make fuzz   run every fuzz target FUZZ_SECS seconds (default 60; nightly, cargo-fuzz)
CARGO ?= cargo
COWORK_DIR ?= $(CURDIR)/.cowork

# Debian packages the tests use (installed by `make deps` when missing, as root;
# postfix preseeded to "No configuration": the e-mail tests configure their own).
APT_PACKAGES := systemd-container git sqlite3 jq procps iproute2 openssl bubblewrap python3 strace util-linux libtss2-dev pkg-config swtpm swtpm-tools tpm2-tools chromium chromium-driver curl dovecot-imapd postfix ngircd python3-venv openssh-server

# The Matrix test's homeserver (PyPI; runs on Debian 12's Python 3.11), in a
# venv beside the build so nothing is installed system-wide.
SYNAPSE_VERSION := 1.163.2
SYNAPSE_VENV := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/synapse-venv

.PHONY: all build build-deps run admin-url test deps fmt-check clippy test-unit test-units test-systemd test-fuzz ci-prune fuzz bench clean

all: build

# What compiling needs on Debian: tss-esapi-sys finds libtss2 through
# pkg-config; ring and the bundled SQLite compile C.
BUILD_PACKAGES := libtss2-dev pkg-config gcc libc6-dev

build: build-deps
	$(CARGO) build --bins

# Installs the build dependencies when root; otherwise stops before compiling
# with the command that installs them.
build-deps:
	@command -v dpkg >/dev/null || exit 0; \
	missing=""; for p in $(BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "make: installing the build dependencies:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "make: building needs Debian packages that are not installed:$$missing"; \
		echo "make: install them first, then run make again:"; \
		echo "    sudo apt-get install -y$$missing"; \
		exit 1; \
	fi

# The development configuration `make run` starts with, and the binaries.
DEV_CONFIG ?= config/dev.toml
COWORKD_BIN ?= ./target/debug/coworkd

run: build
	@mkdir -p $(COWORK_DIR)
	@echo "coworkd (development profile): state in $(COWORK_DIR)/state, sockets in $(COWORK_DIR)/run"
	@$(MAKE) --no-print-directory -s admin-url
	@echo "status: ./target/debug/coworkctl --runtime-dir $(COWORK_DIR)/run status ; chat: ./target/debug/coworkctl --runtime-dir $(COWORK_DIR)/run chat hello"
	$(COWORKD_BIN) --config $(DEV_CONFIG) --state-dir $(COWORK_DIR)/state --runtime-dir $(COWORK_DIR)/run

# Where the admin page of $(DEV_CONFIG) listens, as the configuration says
# (its files and the owner's settings, read by `coworkd check-config --origins`).
admin-url:
	@values=$$($(COWORKD_BIN) check-config --origins $(DEV_CONFIG) --state-dir $(COWORK_DIR)/state 2>/dev/null); \
	port=$$(echo "$$values" | sed -n 's/^admin\.port = \([0-9]*\).*/\1/p'); \
	addr=$$(echo "$$values" | sed -n 's/^admin\.listen = \["\([^"]*\)".*/\1/p'); \
	case "$$addr" in *:*) addr="[$$addr]";; esac; \
	if [ -z "$$port" ]; then echo "admin page: see the log (coworkd check-config $(DEV_CONFIG) found a problem)"; \
	else echo "admin page: https://$${addr:-127.0.0.1}:$$port/ (the log shows its certificate fingerprint and the one-time setup token)"; fi

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "make deps: installing$$missing"; \
			echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "make deps: missing Debian packages:$$missing (run as root or install them)"; \
		fi; \
	fi
	@if [ ! -x "$(SYNAPSE_VENV)/bin/synapse_homeserver" ]; then \
		echo "make deps: installing matrix-synapse $(SYNAPSE_VERSION) into $(SYNAPSE_VENV)"; \
		python3 -m venv "$(SYNAPSE_VENV)" && \
		"$(SYNAPSE_VENV)/bin/pip" install -q "matrix-synapse==$(SYNAPSE_VERSION)" || \
		echo "make deps: matrix-synapse not installed (needs python3-venv and PyPI): the Matrix test skips"; \
	fi

fmt-check:
	$(CARGO) fmt --check
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# Tests whose prerequisite is missing append to this (tests/skip/mod.rs).
SKIP_LOG = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/tmp/skipped.log

test-unit:
	@rm -f $(SKIP_LOG)
	$(CARGO) test
	@if [ -s $(SKIP_LOG) ]; then echo "make test: $$(wc -l < $(SKIP_LOG)) test(s) skipped:"; sed 's/^/    /' $(SKIP_LOG); \
	else echo "make test: no test skipped"; fi

# systemd-analyze security ceilings for every unit we ship.
test-units:
	bash tests/systemd/security.sh

# Boots systemd as PID 1 in systemd-nspawn over this machine's root and checks
# coworkd.service for real. Needs root.
test-systemd: build
	@if [ "$$(id -u)" != 0 ]; then echo "test-systemd: SKIPPED (needs root for systemd-nspawn)"; \
	else bash tests/systemd/run.sh; fi

# Every fuzz target replays its committed corpus (fuzz/corpus/) and runs a few
# seconds more, so a fixed crash that comes back fails. Installs cargo-fuzz
# when missing; without a nightly toolchain: SKIPPED (an error when CI=true).
test-fuzz:
	bash fuzz/run.sh --smoke
	@# CI keeps no fuzz build (gigabytes) for the image build that follows.
	@if [ "$${CI:-}" = true ]; then rm -rf $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/fuzz; fi

FUZZ_SECS ?= 60
fuzz:
	FUZZ_SECS=$(FUZZ_SECS) bash fuzz/run.sh

test: deps fmt-check clippy test-unit test-units test-fuzz test-systemd ci-prune test-image
	@echo "make test: all checks passed"

# CI keeps no debug build (the test binaries: gigabytes) for the image build
# and the QEMU boots that follow; nothing after test-systemd uses it.
ci-prune:
	@if [ "$${CI:-}" = true ]; then \
		echo "make test: CI: removing the debug build ($$(du -sh $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/debug 2>/dev/null | cut -f1)) before the image"; \
		rm -rf $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/debug; fi

bench:
	$(CARGO) bench

clean:
	$(CARGO) clean
	rm -rf $(COWORK_DIR)

# --- Appliance image (image/README.md) ----------------------------------------
# make image        bootable raw disk image in build/image/cowork.raw (QCOW2=1: also .qcow2)
# make test-image   checks its layout and boots it under QEMU with a swtpm TPM 2.0
IMAGE_APT_PACKAGES = $(shell grep -v '^\#' image/APT-PACKAGES)

.PHONY: image image-deps test-image

image-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(IMAGE_APT_PACKAGES)"

image: image-deps build-deps
	$(CARGO) build --release --bins
	@if [ "$$(id -u)" != 0 ]; then echo "image: needs root (mmdebstrap, chroot)"; exit 1; fi
	COWORK_BIN_DIR=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/release bash image/build.sh

test-image:
	@if [ "$$(id -u)" != 0 ]; then echo "test-image: SKIPPED (needs root to build the image)"; \
	else $(MAKE) --no-print-directory image && bash tests/image/run.sh; fi

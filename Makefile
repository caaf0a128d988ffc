# peervault: build, run and test without cargo-leptos.
#
#   make run     install what is missing, build (release), serve on 127.0.0.1:3000
#   make test    install what is missing, build, run every test (unit, HTTP, browser)
#   make build   target/release/peervault + target/site/
#
# The steps mirror what `cargo leptos build --release` does, driven by the
# [package.metadata.leptos] section of Cargo.toml, so both stay in step.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# --- read from [package.metadata.leptos] -----------------------------------
meta = $(shell sed -n '/^\[package\.metadata\.leptos\]/,/^\[/p' Cargo.toml | sed -n 's/^$(1) *= *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' | head -n1)
NAME        := $(call meta,output-name)
SITE_ROOT   := $(call meta,site-root)
PKG_DIR     := $(call meta,site-pkg-dir)
STYLE_FILE  := $(call meta,style-file)
ASSETS_DIR  := $(call meta,assets-dir)
SITE_ADDR   := $(call meta,site-addr)
RELOAD_PORT := $(call meta,reload-port)
WASM_PROFILE := $(call meta,lib-profile-release)
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)

PKG := $(SITE_ROOT)/$(PKG_DIR)
CARGO_BIN := $(HOME)/.cargo/bin
export PATH := $(CARGO_BIN):$(CURDIR)/node_modules/.bin:$(PATH)

# What cargo-leptos sets for its builds (LEPTOS_OUTPUT_NAME is read at compile time).
export LEPTOS_OUTPUT_NAME := $(NAME)
export LEPTOS_SITE_ROOT := $(SITE_ROOT)
export LEPTOS_SITE_PKG_DIR := $(PKG_DIR)
export LEPTOS_SITE_ADDR ?= $(SITE_ADDR)
export LEPTOS_RELOAD_PORT := $(RELOAD_PORT)
export LEPTOS_ENV ?= PROD

SERVER_BIN := target/release/$(NAME)
WASM_OUT := target/wasm32-unknown-unknown/$(WASM_PROFILE)/$(NAME).wasm
SERVER_FLAGS := --no-default-features --features ssr --release

.PHONY: help run build wasm site server tools test-tools test test-unit test-content test-api test-fuzz test-api-scaled test-cluster test-network test-browser bench clean

help:
	@echo "make run    - build and serve peervault on http://$(SITE_ADDR) (data in ./data)"
	@echo "make test   - build and run every test"
	@echo "make build  - $(SERVER_BIN) and $(SITE_ROOT)/"

# --- tools -----------------------------------------------------------------
tools: node_modules
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; fi

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

# A real SMTP server for the reset tests (aiosmtpd, from PyPI).
SMTP_VENV := target/smtp-venv
$(SMTP_VENV)/bin/aiosmtpd:
	python3 -m venv $(SMTP_VENV)
	$(SMTP_VENV)/bin/pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6

# The API fuzzer (schemathesis, from PyPI); the stamp reinstalls it when the pin changes.
SCHEMATHESIS_VERSION := 4.32.5
FUZZ_VENV := target/fuzz-venv
FUZZ_STAMP := $(FUZZ_VENV)/.schemathesis-$(SCHEMATHESIS_VERSION)
$(FUZZ_STAMP):
	python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION)
	@touch $@

test-tools: tools $(SMTP_VENV)/bin/aiosmtpd $(FUZZ_STAMP)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@command -v sqlite3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# --- build -----------------------------------------------------------------
build: tools wasm site server

wasm:
	cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate --profile $(WASM_PROFILE)
	mkdir -p $(PKG)
	wasm-bindgen $(WASM_OUT) --target web --no-typescript --out-name $(NAME) --out-dir $(PKG)
	mv -f $(PKG)/$(NAME)_bg.wasm $(PKG)/$(NAME).wasm
	wasm-opt -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int --enable-reference-types \
	  --enable-multivalue --enable-sign-ext --enable-mutable-globals $(PKG)/$(NAME).wasm -o $(PKG)/$(NAME).wasm

site:
	mkdir -p $(PKG)
	cp $(STYLE_FILE) $(PKG)/$(NAME).css
	cp -R $(ASSETS_DIR)/. $(SITE_ROOT)/

server:
	cargo build --bin $(NAME) $(SERVER_FLAGS)

# --- run -------------------------------------------------------------------
run: build
	mkdir -p data
	./$(SERVER_BIN)

# --- test ------------------------------------------------------------------
LOGS := target/test-logs

test: test-tools build
	@rm -rf $(LOGS); mkdir -p $(LOGS)
	$(MAKE) --no-print-directory test-unit test-content test-api test-fuzz test-api-scaled test-cluster test-network test-browser
	scripts/wasm-size.sh --max 512000
	@scripts/test-summary.sh $(LOGS)

test-unit:
	@mkdir -p $(LOGS)
	cargo test --lib $(SERVER_FLAGS) 2>&1 | tee $(LOGS)/unit.log

# A node:test suite: its TAP log kept in $(LOGS)/NAME.log, failures shown; a
# failed or cancelled test (a hook that failed cancels its tests) fails it.
# An optional third argument wraps the run (e.g. in a throwaway PostgreSQL).
define node_suite
	@mkdir -p $(LOGS)
	$(3) node --test --test-concurrency=1 --test-reporter=tap $(1) 2>&1 | tee $(LOGS)/$(2).log | grep -E '^not ok|^# (tests|pass|fail)' || true
	@! grep -qE '^# (fail|cancelled) [1-9]' $(LOGS)/$(2).log && grep -q '^# pass [1-9]' $(LOGS)/$(2).log || { grep -A25 'not ok' $(LOGS)/$(2).log | head -200; exit 1; }
endef

test-content:
	$(call node_suite,end2end/content/,content)

test-api:
	$(call node_suite,end2end/api/,api)

# schemathesis against the release server's /openapi.json (scripts/fuzz-api.sh):
# every check, the stateful phase, a fixed seed; any failure fails the target.
test-fuzz: $(FUZZ_STAMP)
	@mkdir -p $(LOGS)
	FUZZ_VENV=$(FUZZ_VENV) LOGS=$(LOGS) scripts/fuzz-api.sh 2>&1 | tee $(LOGS)/fuzz.log

# The same HTTP suite scaled out: every server on a PostgreSQL database and an
# S3 bucket (throwaway PostgreSQL and SeaweedFS servers on loopback).
SCALED := scripts/with-postgres.sh scripts/with-s3.sh
test-api-scaled:
	$(call node_suite,end2end/api/,api-scaled,$(SCALED))

# Two instances sharing one database, one bucket and the JWT secret.
test-cluster:
	$(call node_suite,end2end/cluster/,cluster,$(SCALED))

# The storage network: the release binary as coordinator and as nodes, on
# loopback; then again with two coordinator instances on one PostgreSQL
# database and one S3 bucket, the nodes split between them.
test-network:
	$(call node_suite,end2end/network/,network)
	$(call node_suite,end2end/network/,network-scaled,$(SCALED) env PEERVAULT_TEST_COORDINATORS=2)

test-browser:
	@mkdir -p $(LOGS)
	npx playwright test --config end2end/playwright.config.mjs 2>&1 | tee $(LOGS)/browser.log

bench: build
	./scripts/bench-dashboard.sh
	./scripts/bench-content.sh
	./scripts/bench-scaled.sh

clean:
	cargo clean
	rm -rf node_modules

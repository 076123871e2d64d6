# One command each: `make up` runs ShopFlow, `make test` tests it, `make check`
# lints it. `make up` and `make test` set everything up first, so each is the
# only command a fresh machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
VENV := .venv/bin
PYTEST_ARGS ?=

ENV ?= prod

.PHONY: help setup up test test-loaded check bench load fuzz policy

help:
	@echo "make up     run the platform locally behind http://127.0.0.1:8080"
	@echo "make test   install what is needed and run the test suite"
	@echo "make check  ruff, format, mypy, import layering, hadolint, zizmor and actionlint"
	@echo "make test-loaded  make test from clean clones, 5 times in a row, cores kept busy"
	@echo "make bench  benchmarks that print side-by-side ratios (wrk)"
	@echo "make load   a Locust shopper mix through the gateway, bounded in time"
	@echo "make fuzz   schemathesis on every public OpenAPI document, long run (FUZZ_ARGS)"
	@echo "make policy ENV=prod  policy reports for an environment (reports/<env>/)"
	@echo "make setup  install uv, the Python workspace and the pinned Helm (idempotent)"

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --locked --quiet
	@$(VENV)/shopctl install-tools

up: setup
	@$(VENV)/shopctl up $(UP_ARGS)

test: setup
	@$(VENV)/pytest $(PYTEST_ARGS)

test-loaded: setup
	@$(VENV)/python -m tests.load.loaded_runs $(LOADED_ARGS)

check: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports --no-cache
	$(VENV)/shopctl dockerfiles --check
	$(VENV)/hadolint apps/*/Dockerfile
	$(VENV)/zizmor --offline --quiet .github/workflows .github/dependabot.yml
	@$(VENV)/python -m shopctl.workflow_lint

bench: setup
	@$(VENV)/python -m tests.load.bench $(BENCH_ARGS)

load: setup
	@$(VENV)/python -m tests.load.shopper $(LOAD_ARGS)

fuzz: setup
	@$(VENV)/python -m tests.contracts.fuzz $(FUZZ_ARGS)

policy: setup
	@$(VENV)/shopctl policy --env $(ENV)

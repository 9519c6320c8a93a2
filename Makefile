# The commands a developer needs; each is a script in scripts/ so CI runs the same thing.
.PHONY: dev test lint fmt bench bench-report capacity chart image cross rehearse chaos ci

dev:   ## Run the whole stack locally (PostgreSQL + NATS found or started, three services)
	bash scripts/dev.sh

test:  ## Run every test against real PostgreSQL and NATS
	bash scripts/test.sh

lint:  ## Formatting and clippy, as CI runs them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

bench: ## Start-up time and idle memory of each service
	bash bench/startup.sh

bench-report: ## Every service benchmark against its baseline, 1-64 connections: bench/REPORT.md with plots, median of 3 runs (~40 min)
	bash bench/report.sh

capacity: ## CPU per request and per job, measured: bench/report/capacity.tsv and docs/capacity.md's figures (~4 min)
	bash bench/capacity.sh

chart: ## Helm chart: lint, render, kubernetes-validate, policy tests (offline)
	bash scripts/check-chart.sh

image: ## Container images with buildah, run read-only and non-root with podman
	bash scripts/image.sh

cross: ## The images' arm64 binaries cross-compiled as the Dockerfile does, smoke-tested under qemu-user
	bash scripts/cross.sh

rehearse: ## The chart's production manifests run on this machine: replicas, nginx, Prometheus, traffic, upgrade
	bash scripts/rehearse.sh

chaos: ## The rehearsal, also restarting PostgreSQL and NATS under traffic
	REHEARSE_CHAOS=1 bash scripts/rehearse.sh

ci:    ## What .ci/run does
	bash .ci/run

# Developer recipes; CI runs `just ci` through scripts/test. `scripts/tools.sh` installs the
# pinned tools (just, nats-server, cargo-deny, buf) into .tools/.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Smaller debug info keeps the shared target dir and link times down.
export CARGO_PROFILE_DEV_DEBUG := env_var_or_default("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")

# List the recipes.
default:
    @just --list

# Everything CI checks, in the order that fails fastest.
ci: check-fmt proto-lint deny lint layering test

# Format the code.
fmt:
    cargo fmt --all

# Fail when the code is not formatted.
check-fmt:
    cargo fmt --all -- --check

# Clippy on every target, warnings are errors.
lint:
    cargo clippy --workspace --all-targets --locked -- -D warnings

# The client library stays usable without NATS, a service runtime or the OTLP exporter.
layering:
    #!/usr/bin/env bash
    set -euo pipefail
    tree=$(cargo tree -p bcfy-broadcastify -e normal --locked --prefix none)
    if grep -E '^(bcfy-runtime|bcfy-bus|async-nats|opentelemetry-otlp|prometheus) ' <<< "$tree"; then
        echo "bcfy-broadcastify depends on the crates above; it must not" >&2
        exit 1
    fi

# Lint the protobuf schemas (buf STANDARD rules).
proto-lint:
    cd proto && buf lint

# Regenerate proto/src/gen from the .proto files (fails once when they changed; commit the result).
proto-bootstrap:
    cargo test -p bcfy-proto --test bootstrap --locked

# Licences, bans and sources. `cargo fetch` first: cargo-deny reads metadata for every target
# platform, offline, so every crate must already be downloaded.
deny:
    cargo fetch --locked
    cargo deny --offline --locked check licenses bans sources

# Security advisories; needs a RustSec database copy in ~/.cargo/advisory-dbs (cargo-deny's
# default place). No package registry ships one, so CI cannot run this.
deny-advisories:
    cargo deny --offline check advisories

# API docs, with rustdoc warnings as errors.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# Every test (unit, integration against a real nats-server, doc tests).
test:
    cargo nextest run --workspace --locked --profile ci
    cargo test --workspace --doc --locked

# The Helm chart's checks alone (lint, render, validate, schema, assertions); needs the tools
# from scripts/tools.sh on PATH.
chart:
    cargo nextest run -p bcfy-chart --locked

# Benchmarks (criterion and load runs per service); prints medians.
bench:
    cargo bench --workspace --exclude bcfy-e2e --locked

# The whole pipeline under load (release binaries, fake STT): the table in BENCHMARKS.md.
# Knobs: BENCH_TALKGROUPS, BENCH_RATES, BENCH_SECONDS, BENCH_POLL_INTERVAL_MS, BENCH_LOOK_BACK_S,
# BENCH_LOG.
bench-e2e:
    cargo build --release --workspace --bins --locked
    cargo bench -p bcfy-e2e --bench load --locked

# The gateway under load: 1,000 SSE clients following the pipeline at 100 calls/s, then audio
# GETs (figures in BENCHMARKS.md; knobs in tests/benches/gateway.rs).
bench-gateway:
    cargo build --release --workspace --bins --locked
    cargo bench -p bcfy-e2e --bench gateway --locked
    cargo bench -p bcfy-e2e --bench search --locked

# Transcript quality on a generated radio-style call set: the built-in engine against
# faster-whisper-server, bare and gated (figures in BENCHMARKS.md; see tests/benches/stt.rs).
# Generating the set needs flite, sox and ffmpeg (installed with apt when missing).
bench-stt:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v flite >/dev/null || ! command -v sox >/dev/null || ! command -v ffmpeg >/dev/null; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite sox ffmpeg >/dev/null
    fi
    tests/benches/stt/generate.sh target/bench-stt/calls
    INSTALL_WHISPER_BASE=1 . scripts/tools.sh
    cargo build --release --workspace --bins --locked
    cargo bench -p bcfy-e2e --bench stt --locked

# The transcript index at 1,000,000 transcripts (BENCH_TRANSCRIPTS to change).
bench-search:
    cargo build --release --workspace --bins --locked
    cargo bench -p bcfy-e2e --bench search --locked

# The alerter with 10,000 rules at 500 transcripts/s on one replica (figures in BENCHMARKS.md;
# knobs in tests/benches/alerter.rs).
bench-alerter:
    cargo build --release --workspace --bins --locked
    cargo bench -p bcfy-e2e --bench alerter --locked

# The pipeline for an hour at 50 calls/s with the simulator's faults on: memory, file descriptors
# and the store each minute, calls lost at the end (knobs in tests/benches/soak.rs; figures in
# BENCHMARKS.md). Two malloc arenas, as the image runs the services; `MALLOC_ARENA_MAX= just
# soak` runs glibc's default.
soak:
    cargo build --release --workspace --bins --locked
    MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX-2}" cargo bench -p bcfy-e2e --bench soak --locked

# Every fuzz target for SECONDS each (nightly + cargo-fuzz; FUZZING.md has the record), or the
# named ones: `just fuzz 600 live_answer alert_rule`.
fuzz seconds="60" *targets="":
    scripts/fuzz -max_total_time={{seconds}} {{targets}}

# Every fuzz target (or the named ones) for RUNS executions each.
fuzz-runs runs="10000000" *targets="":
    scripts/fuzz -runs={{runs}} {{targets}}

#!/usr/bin/env bash
# Formatting and lints are part of the suite: a change that breaks them does not land.
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

#!/usr/bin/env bash
# The Rust toolchain comes with the machine; rustfmt and clippy are checked by the lint step.
set -euo pipefail
cargo --version
rustc --version

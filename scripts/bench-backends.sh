#!/usr/bin/env bash
# The comparison of README.md's Benchmarks section in one command: future.p2p beside
# future.mirai, raw mirai, multisession and sequential in the same R session, on CRAN's
# futureverse and on Debian's future 1.31 (p2p-cli's r_backends_bench, which installs
# mirai and future.mirai into a bench-only R library the first time), then the Rust-level
# figures of the wormhole sessions beside raw TCP (p2p-transport's wormhole_bench), and
# the idle worker's resident memory beside a bare Rscript (p2p-cli's memory_bench -- idle).
# Arguments go to r_backends_bench (R libraries to measure on; "" for R's own).
# Not a test: nothing here asserts timings. Run it on a quiet machine; both tables print
# the load average they were measured under.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p p2p-cli --bin future-p2p --example r_backends_bench --example memory_bench
cargo run --release --locked -p p2p-cli --example r_backends_bench -- "$@"
echo
echo "load average before the Rust-level figures: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo run --release --locked -p p2p-transport --example wormhole_bench
echo
echo "load average before the idle worker's memory: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo run --release --locked -p p2p-cli --example memory_bench -- idle

#!/usr/bin/env bash
# R for the p2p-r tests: Debian's R 4.2 and future 1.31 (the legacy backend API generation),
# plus the packages the tests and the future.p2p package use. The future.p2p package itself is
# installed by the tests into a library of their own (p2p-r/tests/common), so a stale copy
# never shadows the sources under test.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install r-base-core r-cran-future r-cran-future.apply r-cran-processx r-cran-callr \
  r-cran-progressr r-cran-testthat
Rscript --version
Rscript -e 'cat("future", format(packageVersion("future")), "\n")'

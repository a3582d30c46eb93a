#!/usr/bin/env bash
# The original future.p2p 0.4.0 (../shared/r-peers), the peer of the interop tests
# (p2p-cli/tests/original_interop.rs). It needs future >= 1.67 (Debian has 1.31), so it is
# installed on top of the CRAN futureverse that 45-r-cran.sh put in .ci/r-lib/cran, into a
# library of its own: its package name is the same as ours (future.p2p), and no library may
# hold both.
#   .ci/r-lib/original   the original future.p2p only (R_LIBS=.ci/r-lib/original:.ci/r-lib/cran)
# Also what the tests' private network namespace needs: unshare (util-linux) and ip
# (iproute2). Idempotent: an installed 0.4.0 is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh

# processx and callr are the original's own imports.
apt_install r-base-dev r-cran-processx r-cran-callr iproute2 util-linux

tarball=../shared/r-peers/future.p2p_0.4.0.tar.gz
[ -f "$tarball" ] || { echo "46-r-original: $tarball is needed beside the repository" >&2; exit 1; }
cran=.ci/r-lib/cran
[ -d "$cran/future" ] || { echo "46-r-original: $cran is missing: .ci/setup/45-r-cran.sh makes it" >&2; exit 1; }

original=.ci/r-lib/original
mkdir -p "$original"
have=$(Rscript -e "cat(tryCatch(format(packageVersion('future.p2p', lib.loc = '$original')), error = function(e) ''))")
if [ "$have" != "0.4.0" ]; then
  echo "installing the original future.p2p 0.4.0 into $original"
  log=$(mktemp)
  R_LIBS="$PWD/$cran" R CMD INSTALL -l "$original" "$tarball" >"$log" 2>&1 \
    || { cat "$log"; rm -f "$log"; exit 1; }
  rm -f "$log"
fi
R_LIBS="$PWD/$original:$PWD/$cran" Rscript -e '
  stopifnot(packageVersion("future.p2p") == "0.4.0", packageVersion("future") >= "1.67.0")
  cat("original future.p2p", format(packageVersion("future.p2p")), "on future", format(packageVersion("future")), "\n")'

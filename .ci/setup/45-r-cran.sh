#!/usr/bin/env bash
# The futureverse R users have today, for the second run of the R tests (.ci/run):
# - .ci/r-lib/cran: the CRAN releases kept in ../shared/r-cran (future 1.68, globals,
#   parallelly, future.apply, progressr, future.tests 0.9), installed by its install.sh;
# - .ci/r-lib/debian: future.tests 0.8.0, the last release that runs on future < 1.40, for
#   the first run on Debian's future 1.31. .ci/r-packages/future.tests_0.8.0.tar.gz is
#   `git archive` of its release tag 0.8.0 (futureverse/future.tests, LGPL >= 2.1):
#   DESCRIPTION NAMESPACE NEWS.md R inst man.
# Also what R CMD build and R CMD check --as-cran of the package need: knitr and markdown
# (the vignette), testthat (the tests), tidy (HTML validation of the help pages), qpdf
# (the size check of documentation PDFs, which --as-cran makes a WARNING without it); and
# data.table and ff, which future.tests checks futures with when they are installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh

apt_install r-base-dev r-cran-digest r-cran-cli r-cran-crayon r-cran-prettyunits \
  r-cran-sessioninfo r-cran-knitr r-cran-markdown r-cran-testthat tidy \
  r-cran-data.table r-cran-ff qpdf

shared=../shared/r-cran
if [ ! -f "$shared/install.sh" ]; then
  echo "error: $shared/install.sh is missing: the R tests need CRAN's futureverse from ../shared/r-cran" >&2
  exit 1
fi
bash "$shared/install.sh" .ci/r-lib/cran

debian=.ci/r-lib/debian
mkdir -p "$debian"
have=$(Rscript -e "cat(tryCatch(format(packageVersion('future.tests', lib.loc = '$debian')), error = function(e) ''))")
if [ "$have" != "0.8.0" ]; then
  R CMD INSTALL -l "$debian" .ci/r-packages/future.tests_0.8.0.tar.gz >/dev/null
fi

# Each library must give the future it is for; R would silently fall back to Debian's.
R_LIBS="$PWD/.ci/r-lib/cran" Rscript -e '
  stopifnot(packageVersion("future") >= "1.40.0", packageVersion("future.tests") >= "0.9.0")
  cat("CRAN library: future", format(packageVersion("future")), "\n")'
R_LIBS="$PWD/$debian" Rscript -e '
  stopifnot(packageVersion("future") < "1.40.0", packageVersion("future.tests") == "0.8.0")
  cat("Debian library: future", format(packageVersion("future")), "\n")'

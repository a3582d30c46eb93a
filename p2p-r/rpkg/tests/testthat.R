## Without a future-p2p cluster (as under R CMD check) only the tests that need none run;
## cargo test -p p2p-r --test r_cluster runs them all on a local cluster.
library(testthat)
library(future.p2p)

test_check("future.p2p")

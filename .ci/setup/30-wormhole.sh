#!/usr/bin/env bash
# Real magic-wormhole peers for the p2p-transport wormhole tests:
# - wormhole-william (Go, the client future.p2p uses) from Debian,
# - the Python reference client, mailbox server and transit relay from PyPI, in .ci/venv
#   (tests look them up in .ci/venv/bin, and .ci/run puts that directory on PATH).
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh

apt_install wormhole-william python3-venv

# Versions pinned to the ones the interop tests were written against.
PKGS=(
  "magic-wormhole==0.24.0"
  "magic-wormhole-mailbox-server==0.8.0"
  "magic-wormhole-transit-relay==0.5.0"
)
# Debian's Python, not one under $HOME (pyenv): the interop tests run peers as other users
# whose homes hide the real one, and the venv's interpreter must stay reachable for them.
if [ ! -x .ci/venv/bin/python ]; then
  /usr/bin/python3 -m venv .ci/venv
fi
if ! .ci/venv/bin/pip show magic-wormhole magic-wormhole-mailbox-server magic-wormhole-transit-relay >/dev/null 2>&1; then
  .ci/venv/bin/pip install --quiet --disable-pip-version-check "${PKGS[@]}"
fi
.ci/venv/bin/wormhole --version
command -v wormhole-william

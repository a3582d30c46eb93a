#!/usr/bin/env bash
# Real SSH peers for the board tests: the OpenSSH client (`ssh`, `ssh-keygen`) talks to the
# hub's pipe server, and Debian's `sshd` is started by a test as a -J jump host.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install openssh-client openssh-server
# The README test (p2p-cli/tests/readme.rs) runs the README's commands in a network
# namespace of their own: unshare (util-linux) and ip (iproute2).
apt_install util-linux iproute2
# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd

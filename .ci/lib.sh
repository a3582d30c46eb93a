# Helpers for .ci/setup/*.sh. Source it; do not run it.

# apt_install PKG...: install the Debian packages that are missing, running `apt-get update`
# at most once per CI run (the lists on a fresh machine are empty or old).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local stamp=/tmp/future-p2p-apt-updated
  if [ ! -e "$stamp" ]; then
    apt-get update -qq
    touch "$stamp"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

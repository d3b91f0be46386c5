#!/usr/bin/env bash
# Install what the tests need on a Debian machine that has Python: the Debian packages
# that are missing (pure-ftpd, Info-ZIP zip and unzip, openssl, chattr, chromium for the
# dashboard's browser test), then the Python test
# tools. Safe to run again: nothing is installed twice.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pure-ftpd >/dev/null 2>&1 || [ -x /usr/sbin/pure-ftpd ] || missing+=(pure-ftpd)
command -v zip >/dev/null 2>&1 || missing+=(zip)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v chattr >/dev/null 2>&1 || missing+=(e2fsprogs)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "tests/setup.sh: needs root (or sudo) to install: ${missing[*]}" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  echo "tests/setup.sh: installing ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

python -m pip install -q -r tests/requirements.txt

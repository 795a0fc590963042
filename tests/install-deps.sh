#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: lrsearch with its test extras,
# PostgreSQL (tests start a private server on 127.0.0.1) and Chromium with its driver (browser
# tests of the dashboard and the report). Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pip install -q -e '.[test]'

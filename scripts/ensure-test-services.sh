#!/usr/bin/env bash
# Install the Debian packages the test suite starts for itself: PostgreSQL 15, Redis and Chromium.
# The tests start and stop the servers; this only makes sure the programs are on the machine.
set -euo pipefail
missing=()
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql-15)
command -v redis-server >/dev/null || missing+=(redis-server)
[[ -x /usr/bin/chromium ]] || missing+=(chromium fonts-noto-core)
if ((${#missing[@]} == 0)); then exit 0; fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "missing test services: ${missing[*]} (install them with apt-get as root)" >&2
  exit 0  # the tests say which server could not start; under CI that is a failure
fi
echo "installing ${missing[*]} from Debian's packages" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services; the tests run their own on free ports, so stop those.
if command -v service >/dev/null; then
  service redis-server stop >/dev/null 2>&1 || true
  service postgresql stop >/dev/null 2>&1 || true
fi

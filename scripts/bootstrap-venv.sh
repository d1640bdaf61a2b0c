#!/usr/bin/env bash
# Create the project's virtual environment with Python 3.11, installing Debian's venv support when it is missing.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
if [[ -x "$venv/bin/python" ]]; then exit 0; fi
if ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  if command -v python3.11 >/dev/null; then python=python3.11; else
    echo "casework needs Python 3.11 ($python is $("$python" -V 2>&1))" >&2; exit 1
  fi
fi
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing Debian's python3-venv" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv "$venv"
  else
    echo "cannot create a virtual environment: install python3-venv" >&2; exit 1
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip

#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh test
exec .venv/bin/python -m pytest -q "$@"

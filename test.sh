#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh test
# Static checks first (seconds; mypy keeps its cache in .mypy_cache): a new lint finding or
# type error fails the run before the tests start. Both are configured in pyproject.toml.
.venv/bin/ruff check --quiet allsky_tasks dodo.py bench tests
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"

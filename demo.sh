#!/usr/bin/env bash
# Fresh machine, no Allsky needed: build a demo Allsky tree in ./demo and back it up with
# every spec in backup_specs/, twice (the second run must find everything up to date).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh demo
export ALLSKY_HOME="$PWD/demo/allsky"
export ALLSKY_BACKUP_DIR="$PWD/demo/allskybackups"
unset ALLSKY_IMAGES ALLSKY_SPECS_DIR
rm -rf demo
.venv/bin/python -m allsky_tasks.demo "$ALLSKY_HOME"
echo "== doit list"
.venv/bin/doit list --all
echo "== first run: validate, scan, pause, pack, manifest, verify every spec"
.venv/bin/doit
echo "== second run: nothing changed, so nothing is packed"
.venv/bin/doit
echo "== archives in $ALLSKY_BACKUP_DIR"
ls -l "$ALLSKY_BACKUP_DIR"

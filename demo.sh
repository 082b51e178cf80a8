#!/usr/bin/env bash
# Fresh machine, no Allsky needed: build a demo Allsky tree in ./demo and back it up with
# every spec in backup_specs/, twice (the second run must find everything up to date).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh demo
export ALLSKY_HOME="$PWD/demo/allsky"
export ALLSKY_BACKUP_DIR="$PWD/demo/allskybackups"
export ALLSKY_TASKS_AUTH_KEY="$PWD/demo/allsky-tasks-auth.key"  # the demo's own key, not ~'s
# The demo tree has no Allsky service to pause (a real Pi has one: a missing unit is an error).
export ALLSKY_SERVICE_PAUSE=never
unset ALLSKY_IMAGES ALLSKY_SPECS_DIR
rm -rf demo
.venv/bin/python -m allsky_tasks.demo "$ALLSKY_HOME"
echo "== doit list"
.venv/bin/doit list --all
echo "== first run: validate, scan, pause, pack, manifest, verify every spec"
.venv/bin/doit backup
echo "== second run: nothing changed, so nothing is packed"
.venv/bin/doit backup
echo "== archives in $ALLSKY_BACKUP_DIR"
ls -l "$ALLSKY_BACKUP_DIR"
# Point later commands at the demo tree, not at ~/allsky and ~/allskybackups.
cat > demo/env.sh <<ENV
# Written by demo.sh: \`. demo/env.sh\` points allsky-tasks and doit at the demo tree.
export ALLSKY_HOME='$ALLSKY_HOME'
export ALLSKY_BACKUP_DIR='$ALLSKY_BACKUP_DIR'
export ALLSKY_TASKS_AUTH_KEY='$ALLSKY_TASKS_AUTH_KEY'
export ALLSKY_SERVICE_PAUSE=never
unset ALLSKY_IMAGES ALLSKY_SPECS_DIR
export PATH='$PWD/.venv/bin':"\$PATH"
ENV
echo "== done. To use the demo tree from this shell, paste:"
echo "   . '$PWD/demo/env.sh'"
echo "   then: allsky-tasks list; allsky-tasks info NAME; allsky-tasks restore NAME --dry-run"

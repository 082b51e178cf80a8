"""`python -m allsky_tasks` runs the command line."""

import sys

try:
    from .cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C while the command was still starting up
    print("allsky-tasks: interrupted", file=sys.stderr)
    code = 130
raise SystemExit(code)

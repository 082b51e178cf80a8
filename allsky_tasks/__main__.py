"""`python -m allsky_tasks` runs the command line."""

from .cli import main

raise SystemExit(main())

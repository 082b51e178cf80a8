"""`python -m allsky_tasks.demo`: create a demo Allsky tree."""

from .cli import main

raise SystemExit(main())

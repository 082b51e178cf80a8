"""Scheduled runs: a systemd timer and service (or a cron entry) running `allsky-tasks run --quiet`.

Layer: may import the base only.
"""

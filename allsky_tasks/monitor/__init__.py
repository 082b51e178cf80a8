"""Unattended runs: each run's recorded outcome, who is told (WebUI messages, apprise, pings), status.

Layer: may import base, spec, archive, copies and inventory (status reads the backups' listing).
"""

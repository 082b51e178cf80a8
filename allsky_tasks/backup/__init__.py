"""The doit stages of a backup and what only they use.

Task dicts (tasks), their actions, scan and walk, plan and estimate, pack with its digests and
SQLite capture, per-night sets, free space, the summary.

Layer: may import the shared base, spec, archive, service and copies (the copy stage); never
inventory, restore or cli.
"""

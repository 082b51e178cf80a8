"""The doit stages of a backup and what only they use.

Task dicts (tasks), their actions, recovery, scan and walk, plan and estimate, pack with its
digests and SQLite capture, per-night sets, free space, re-verification, the copy and prune
steps, the summary and the reporter.

Layer: may import the shared base, spec, archive, service, copies (the copy stage) and
inventory (prune:<spec> applies the inventory's retention plan); never restore, monitor,
schedule or cli.
"""

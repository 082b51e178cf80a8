"""What backups exist: list, info, verify by name, import, pin, delete, prune and retention.

Layer: may import the shared base, spec, archive and copies; never backup, restore or cli.
"""

"""Putting a backup back: pre-restore checks, staged extraction, placing, owners, the log.

Layer: may import the shared base, spec, archive, service, backup (the undo backup), inventory
and copies (restore from a target); never cli.
"""

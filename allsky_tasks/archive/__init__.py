"""The archive format, shared by backup, inventory, restore and copies.

Streams (tar headers, zstd frames, gzip), metadata.json, manifest and sidecar, verify, and the
safety checks for untrusted archives.

Layer: may import the shared base and `spec` (the sections table); never backup, service,
inventory, restore, copies or cli.
"""

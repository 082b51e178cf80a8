"""Backup specs: YAML reading, JSON Schema and semantic checks, the sections table, doc-line cache.

Layer: may import the shared base (environment, errors, progress, install) only.
"""

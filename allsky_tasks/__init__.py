"""Declarative, verified backups for Allsky installs."""

__version__ = "0.1.0"

"""The Allsky service: pausing it around a backup or restore, its commands, the marker, the lock.

Layer: may import the shared base only.
"""

"""Copies of backups at other places: mounted disks, SSH servers, object storage, rclone remotes.

Layer: may import the shared base, spec and archive; never backup, inventory, restore or cli.
"""

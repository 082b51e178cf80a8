"""Spec schema for the cloud kinds (s3, rclone, allsky_remote) and `encrypt:` on a copies item."""

from __future__ import annotations

import pytest

from allsky_tasks.errors import SpecError
from allsky_tasks.spec.load import load_spec
from tests.conftest import Site

RECIPIENT = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"


def test_a_spec_with_every_cloud_kind_and_encryption_loads(site: Site) -> None:
    path = site.spec("offsite", f"""\
type: config
copies:
  - name: b2
    s3: {{bucket: my-allsky-backups, prefix: pi-north, endpoint_url: "https://s3.eu-central-003.backblazeb2.com",
         region: eu-central-003, storage_class: STANDARD, profile: b2}}
    encrypt: {{recipients: ["{RECIPIENT}"]}}
  - name: gdrive
    rclone: "gdrive:allsky-backups"
    encrypt: {{recipients: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbCdEf me@laptop"]}}
  - name: dropbox
    rclone: {{remote: "dropbox:allsky", flags: [--bwlimit, 1M]}}
    encrypt: false
  - name: remote
    allsky_remote: server
    encrypt: {{recipients: ["{RECIPIENT}"]}}
    required: true
  - name: website
    allsky_remote: {{use: website, folder: allskybackups}}
    encrypt: false
""")
    spec = load_spec(path, site.env)
    assert [c["name"] for c in spec.copies] == ["b2", "gdrive", "dropbox", "remote", "website"]


@pytest.mark.parametrize("item, where", [
    ('{name: x, s3: {prefix: p}}', "bucket"),
    ('{name: x, s3: {bucket: b, access_key: AKIA}}', "access_key"),
    ('{name: x, rclone: "no-colon"}', "rclone"),
    ('{name: x, allsky_remote: ftp}', "allsky_remote"),
    ('{name: x, allsky_remote: server, encrypt: {recipients: ["age1short"]}}', "recipients"),
    ('{name: x, allsky_remote: server, encrypt: {recipients: []}}', "recipients"),
])
def test_bad_cloud_items_are_refused_naming_the_field(site: Site, item: str, where: str) -> None:
    path = site.spec("bad", f"type: config\ncopies:\n  - {item}\n")
    with pytest.raises(SpecError, match=r"copies\[0\]") as err:
        load_spec(path, site.env)
    assert where in str(err.value)


def test_a_config_backup_to_a_cloud_target_needs_encrypt_or_an_explicit_false(site: Site) -> None:
    path = site.spec("clear", "type: config\ncopies:\n  - {name: gdrive, rclone: 'gdrive:x'}\n")
    with pytest.raises(SpecError, match=r"copies\[0\].encrypt: a config backup holds env.json"):
        load_spec(path, site.env)
    path = site.spec("images", "type: images\ncopies:\n  - {name: gdrive, rclone: 'gdrive:x'}\n")
    assert load_spec(path, site.env).copies[0]["name"] == "gdrive"  # images hold no secrets

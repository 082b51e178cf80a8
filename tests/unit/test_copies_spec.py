"""The `copies:` part of a spec: schema, semantic checks, round trip."""

from __future__ import annotations

import json

import pytest

from allsky_tasks.environment import SCHEMA_PATH
from allsky_tasks.errors import SpecError
from allsky_tasks.spec.load import load_spec
from allsky_tasks.spec.model import spec_from_json, spec_to_json

from ..conftest import Site

GOOD = """type: config
must_be_mounted: false
copies:
  - name: usb
    path: /media/usb/allsky-copies
    required: true
    keep_last: 14
  - name: nas
    ssh: {host: nas.local, port: 2222, user: pi, folder: backups/allsky,
          key_file: ~/.ssh/id_ed25519}
"""


def test_copies_load_and_survive_the_json_round_trip(site: Site) -> None:
    spec = load_spec(site.spec("c", GOOD), site.env)
    assert [c["name"] for c in spec.copies] == ["usb", "nas"]
    assert spec.copies[1]["ssh"]["port"] == 2222 and spec.must_be_mounted is False
    assert spec_from_json(json.loads(json.dumps(spec_to_json(spec)))) == spec


@pytest.mark.parametrize("text, problem", [
    ("copies:\n  - name: x\n    path: /a\n    ssh: {host: h, folder: f}\n",
     "$.copies[0]: needs exactly one target kind such as path or ssh (found path, ssh)"),
    ("copies:\n  - name: x\n    required: true\n", "$.copies[0]: needs exactly one target kind"),
    ("copies:\n  - {name: x, path: /a}\n  - {name: x, path: /b}\n",
     "$.copies[1].name: 'x' is used twice"),
    ("copies:\n  - name: x\n    must_be_mounted: true\n    ssh: {host: h, folder: f}\n",
     "$.copies[0].must_be_mounted: only for path targets"),
    ("copies:\n  - name: x\n    ssh: {host: h, folder: f, password: secret}\n",
     "$.copies[0].ssh: unknown key 'password'"),
    ("copies:\n  - name: x\n    ssh: {host: -oProxyCommand=evil, folder: f}\n",
     "$.copies[0].ssh.host: '-oProxyCommand=evil' does not match"),
    ("copies:\n  - name: Bad Name\n    path: /a\n", "$.copies[0].name: 'Bad Name' does not match"),
    ("copies:\n  - name: x\n    ssh: {host: h, folder: 'b*'}\n",
     "$.copies[0].ssh.folder: 'b*' does not match"),
])
def test_bad_copies_are_named(site: Site, text: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(site.spec("c", "type: config\n" + text), site.env)
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_every_copies_field_is_documented_with_an_example() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    for name in ("copy", "sshTarget"):
        node = schema["$defs"][name]
        assert node["description"] and node["examples"]
        for key, sub in node["properties"].items():
            sub = schema["$defs"][sub["$ref"].split("/")[-1]] if "$ref" in sub else sub
            assert sub.get("description") and sub.get("examples"), (name, key)

"""Spec files: schema, semantic checks and error format, on real files and a real tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allsky_tasks.environment import SCHEMA_PATH
from allsky_tasks.errors import SpecError
from allsky_tasks.spec.load import load_spec
from allsky_tasks.spec.model import spec_from_json, spec_to_json
from allsky_tasks.spec.sections import BY_KEY
from allsky_tasks.spec.semantics import display_path

from ..conftest import DATA, SHIPPED_SPECS, Site

VALID = sorted((DATA / "specs" / "valid").glob("*.yaml"))
INVALID = sorted((DATA / "specs" / "invalid").glob("*.yaml"))


def _expectations(path: Path) -> list[str]:
    """The '# expect:' lines of an invalid spec file."""
    return [line.split("# expect:", 1)[1].strip()
            for line in path.read_text().splitlines() if line.startswith("# expect:")]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_spec_loads(path: Path, site: Site) -> None:
    spec = load_spec(path, site.env)
    assert spec.name == path.stem
    assert spec.home == site.home
    assert spec.destination == site.env.backup_dir
    assert spec.digest and len(spec.digest) == 64


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_is_rejected_with_every_problem(path: Path, site: Site,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLSKY_HOME", str(site.home))
    expected = _expectations(path)
    assert expected, f"{path} has no '# expect:' line"
    with pytest.raises(SpecError) as info:
        load_spec(path, site.env)
    text = "\n".join(info.value.problems)
    for problem in info.value.problems:
        assert problem.startswith(f"{display_path(path)}::$"), problem
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_many_problems_are_listed_at_once(site: Site) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(DATA / "specs" / "invalid" / "many-problems.yaml", site.env)
    assert len(info.value.problems) == 4


def test_shipped_specs_are_valid_against_demo_tree(site: Site) -> None:
    shipped = sorted(SHIPPED_SPECS.glob("*.yaml"))
    assert len(shipped) >= 4
    kinds = {load_spec(p, site.env).type for p in shipped}
    assert kinds == {"config", "images"}


def test_schema_sections_match_section_table() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert set(schema["properties"]["sections"]["properties"]) == set(BY_KEY)


def _walk_properties(node: dict, where: str = "$") -> list[str]:
    """Every property path in the schema lacking a description or examples."""
    missing = []
    for key, sub in node.get("properties", {}).items():
        path = f"{where}.{key}"
        if "description" not in sub or "examples" not in sub:
            missing.append(path)
        missing += _walk_properties(sub, path)
    for branch in node.get("oneOf", []):
        missing += _walk_properties(branch, where)
    return missing


def test_schema_documents_every_property() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert _walk_properties(schema) == []


def test_yaml_integer_folders_become_names(site: Site) -> None:
    night = site.tree.nights[0]
    path = site.spec("ints", f"type: images\nfolders: [{night}]\n")
    assert load_spec(path, site.env).folders == [night]


def test_spec_survives_the_json_round_trip(site: Site) -> None:
    spec = load_spec(DATA / "specs" / "valid" / "config-all-sections.yaml", site.env)
    assert spec_from_json(json.loads(json.dumps(spec_to_json(spec)))) == spec


def test_missing_home_is_reported(site: Site, tmp_path: Path) -> None:
    path = site.spec("elsewhere", f"type: config\nhome: {tmp_path / 'nope'}\n")
    with pytest.raises(SpecError, match=r"\$\.home: Allsky home .*nope does not exist"):
        load_spec(path, site.env)


def test_missing_settings_file_is_reported(site: Site) -> None:
    (site.home / "config" / "cc.json").unlink()
    path = site.spec("nocc", "type: config\n")
    with pytest.raises(SpecError, match=r"required file .*cc\.json does not exist"):
        load_spec(path, site.env)


def test_destination_inside_images_is_rejected(site: Site) -> None:
    path = site.spec("inside", f"type: images\ndestination: {site.tree.images / 'backups'}\n")
    with pytest.raises(SpecError, match="inside the backed-up path"):
        load_spec(path, site.env)

"""The schedule's files as text: no value can start a line of its own in root's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from allsky_tasks.errors import ScheduleError
from allsky_tasks.schedule.install import install, paths
from allsky_tasks.schedule.installed import from_cron, from_units
from allsky_tasks.schedule.units import Plan, cron_file, service_unit, timer_unit

GOOD = Plan(user="pi", at="10:30", command=("/home/pi/allsky-tasks/.venv/bin/python", "-m",
                                            "allsky_tasks"),
            environment=(("ALLSKY_HOME", "/home/pi/allsky 50%"),
                         ("ALLSKY_SPECS_DIR", "/home/pi/my \"specs\""),
                         ("ALLSKY_BACKUP_DIR", "/home/pi/allskybackups")), specs=("cfg",))


@pytest.mark.parametrize("field, value", [
    ("environment", (("ALLSKY_HOME", "/home/pi/allsky\nExecStartPre=+/bin/sh -c id"),)),
    ("environment", (("ALLSKY_HOME", "/home/pi/allsky\r* * * * * root id"),)),
    ("user", "pi\nExecStartPre=+/bin/true"),
    ("specs", ("cfg\x00",)),
    ("command", ("/usr/bin/python3\t", "-m", "allsky_tasks")),
])
def test_a_control_character_in_any_value_is_refused(field: str, value: object) -> None:
    from dataclasses import replace

    plan = replace(GOOD, **{field: value})
    for render in (service_unit, timer_unit, lambda p: cron_file(p, 3)):
        with pytest.raises(ScheduleError, match="control character"):
            render(plan)


@pytest.mark.parametrize("backend", ["systemd", "cron"])
def test_install_writes_nothing_when_a_value_is_refused(tmp_path: Path, backend: str) -> None:
    from dataclasses import replace

    bad = replace(GOOD, environment=(("ALLSKY_HOME", "/x\nExecStartPre=+/bin/id"),))
    with pytest.raises(ScheduleError):
        install(bad, tmp_path, backend)
    assert not any(p.exists() for p in paths(tmp_path).values())
    assert not (tmp_path / "etc").exists()


def test_values_read_back_from_the_files_are_the_ones_written(tmp_path: Path) -> None:
    units = from_units(service_unit(GOOD), timer_unit(GOOD), [])
    assert units.environment == dict(GOOD.environment) and units.user == "pi"
    assert units.argv == GOOD.argv() and units.at == "10:30"
    cron = from_cron(cron_file(GOOD, 7), [])
    assert cron.environment == dict(GOOD.environment) and cron.user == "pi"
    assert cron.argv == GOOD.argv()

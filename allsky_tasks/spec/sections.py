"""The data table of config sections: what each backs up and how Allsky names it."""

from __future__ import annotations

from dataclasses import dataclass

# Placeholders resolved per install: the camera-specific settings and cc files.
SETTINGS = "{settingsfile}"
CC = "{ccfile}"


@dataclass(frozen=True)
class Section:
    """One switchable part of a config backup."""

    key: str
    shortdescription: str
    description: str
    paths: tuple[str, ...]
    required: bool = False
    # Globs (relative to the home) whose files belong to this section.
    globs: tuple[str, ...] = ()
    # Paths that belong to other sections even when they sit below ours.
    exclude: tuple[str, ...] = ()
    # Selecting this section means a live database is read.
    database: bool = False
    # True for sections Allsky itself knows; ours are namespaced in metadata.
    allsky_native: bool = True


_MODULES_DIR = "config/myFiles/modules"
_DB_FILES = ("config/myFiles/allsky.db", "config/myFiles/db_data.json",
             "config/myFiles/secrets.json")

# Order matters: a file claimed by an earlier section is not repeated by a later one.
SECTIONS: tuple[Section, ...] = (
    Section(
        key="core", shortdescription="Core Files", description="Core Files", required=True,
        paths=(SETTINGS, CC, "config/overlay/myTemplates", "config/overlay/images",
               "config/overlay/imagethumbnails", "config/overlay/fonts",
               "config/overlay/config", "config/modules", "env.json"),
    ),
    Section(
        key="databases", shortdescription="Allsky Databases", database=True,
        description=("Include the databases directory which contains the allsky.db file. "
                     "This can be a large directory but will allow you to restore your "
                     "database if needed."),
        paths=_DB_FILES,
    ),
    Section(
        key="modules", shortdescription="User Modules",
        description=("Include the modules directory which contains the installed modules. "
                     "This can be a large directory but will allow you to restore your "
                     "modules if needed."),
        paths=(_MODULES_DIR,),
    ),
    Section(
        key="cameras", shortdescription="All Camera Settings", allsky_native=False,
        description=("Settings and cc files of every camera ever used "
                     "(config/settings_*.json, config/cc_*.json), not only the current one."),
        paths=(), globs=("config/settings_*.json", "config/cc_*.json"),
    ),
    Section(
        key="uservariables", shortdescription="User Variables", allsky_native=False,
        description="config/uservariables.sh (e.g. a moved ALLSKY_IMAGES).",
        paths=("config/uservariables.sh",),
    ),
    Section(
        key="remote", shortdescription="Remote Website Configuration", allsky_native=False,
        description="config/remote_configuration.json for a remote Allsky Website.",
        paths=("config/remote_configuration.json",),
    ),
    Section(
        key="ssl", shortdescription="SSL Certificates", allsky_native=False,
        description="config/ssl/ (WebUI certificates and keys).",
        paths=("config/ssl",),
    ),
    Section(
        key="myfiles", shortdescription="Other User Files", allsky_native=False,
        description="The rest of config/myFiles/ (notification images and other user files).",
        paths=("config/myFiles",), exclude=(_MODULES_DIR, *_DB_FILES),
    ),
    Section(
        key="darks", shortdescription="Dark Frames", allsky_native=False,
        description="darks/ (dark frames for noise subtraction).",
        paths=("darks",),
    ),
)

IMAGES_SECTION = Section(
    key="images", shortdescription="Images Folder", description="Images Folder",
    required=True, paths=("images",),
)

BY_KEY: dict[str, Section] = {s.key: s for s in SECTIONS}
OPTIONAL_KEYS: tuple[str, ...] = tuple(s.key for s in SECTIONS if not s.required)


def section_metadata(section: Section) -> dict[str, object]:
    """The `includedSections` entry Allsky writes for a section."""
    return {"key": section.key, "description": section.description,
            "shortdescription": section.shortdescription, "required": section.required}

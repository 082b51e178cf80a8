"""Generate a realistic demo Allsky install tree for the README demo, test fixtures and benchmarks.

Layer: may import the shared base only (it imports nothing of the package); Pillow draws the frames.
"""

from __future__ import annotations

from .cli import main
from .tree import DemoTree, make_demo_tree

__all__ = ["DemoTree", "main", "make_demo_tree"]

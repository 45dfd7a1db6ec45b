"""``qb policy``: filled in by issue 14's work (registration only for now)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb policy`` (no sub-commands yet)."""

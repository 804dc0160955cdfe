"""Every chat catalog exists in every language, with exactly the English keys, and every
template compiles. One test per catalog file, so a missing translation names its area."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from jinja2 import Environment

from bot.texts import CATALOG_DIR, LANGUAGES


def _keys(path: Path) -> dict[str, str]:
    def flat(prefix: str, table: dict) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            out |= flat(name, value) if isinstance(value, dict) else {name: str(value)}
        return out

    with path.open("rb") as handle:
        return flat("", tomllib.load(handle))


ENGLISH = sorted(p.name for p in (CATALOG_DIR / "en").glob("*.toml"))
OTHERS = sorted(set(LANGUAGES) - {"en"})


@pytest.mark.parametrize("language", OTHERS)
@pytest.mark.parametrize("name", ENGLISH)
def test_each_catalog_has_exactly_the_english_keys(language: str, name: str) -> None:
    english = _keys(CATALOG_DIR / "en" / name)
    translated = _keys(CATALOG_DIR / language / name)

    assert sorted(set(english) - set(translated)) == []  # missing translations
    assert sorted(set(translated) - set(english)) == []  # keys English no longer has


@pytest.mark.parametrize("language", ["en", *OTHERS])
def test_every_template_compiles_and_no_key_is_defined_twice(language: str) -> None:
    seen: dict[str, str] = {}
    env = Environment(autoescape=True)
    for path in sorted((CATALOG_DIR / language).glob("*.toml")):
        for key, source in _keys(path).items():
            assert key not in seen, f"{key} is in both {seen[key]} and {path.name}"
            seen[key] = path.name
            env.parse(source)

"""The README's indicator table and layout cannot go stale."""
from __future__ import annotations

from pathlib import Path

from common.domain.indicators import describe_indicators

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lists_every_indicator_key_and_its_outputs():
    readme = (ROOT / "README.md").read_text()
    for d in describe_indicators():
        assert f"| `{d['key']}` |" in readme and f"| {', '.join(d['outputs'])} |" in readme, d["key"]


def test_readme_layout_names_every_package():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Tests")]
    packages = [p.parent.name for top in ("common", "services") for p in (ROOT / top).glob("*/__init__.py")]
    assert packages and all(f"{name}/" in layout for name in packages), packages

"""The README, which the docs' strict build (`mkdocs build --strict`, run by `make test`)
does not read: its length, and every relative link and anchor in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)


def _anchors(markdown: str) -> set[str]:
    """The ids Python-Markdown's toc extension (the site's) gives the headings of a page."""
    from markdown.extensions.toc import slugify

    text = FENCE.sub("", markdown)
    return {slugify(re.sub(r"[`*_]", "", m.group(1)), "-")
            for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


def _links(markdown: str) -> list[str]:
    return [m.group(1) for m in LINK.finditer(FENCE.sub("", markdown))]


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; the issue allows 150"


def test_readme_links_resolve_inside_the_repository():
    text = README.read_text(encoding="utf-8")
    broken = []
    for link in _links(text):
        if re.match(r"[a-z]+://|mailto:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (ROOT / path).resolve() if path else README
        if ROOT not in target.parents and target != ROOT:
            broken.append(f"{link}: outside the repository")
        elif not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and anchor not in _anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{link}: no heading '#{anchor}' in {path or 'README.md'}")
    assert not broken, "broken links in README.md:\n" + "\n".join(broken)


def test_anchor_ids_are_the_sites():
    """Ids as the site gives them (each one linked from a page that the strict build checks):
    a plain heading, one in code, one with code in parentheses; fenced code is no heading."""
    page = ("## Reading the table\n\n### `cimtest reproduce`\n\n## Metrics (`cimtest.metrics`)\n"
            "\n```bash\n# a comment\n```\n")
    assert _anchors(page) == {"reading-the-table", "cimtest-reproduce", "metrics-cimtestmetrics"}

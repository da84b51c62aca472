"""The results tables of docs/results.md and the README, generated from docs/results.csv.

Each row of the CSV is one measured configuration (3 seeds unless it says otherwise); a table is
every row of one ``table`` value, in file order. The Markdown files hold each table between
``<!-- results:NAME -->`` and ``<!-- /results -->``; this script rewrites those blocks, and
``tests/test_docs.py`` fails when they differ from what it would write.

    python scripts/results_tables.py          # rewrite the blocks
    python scripts/results_tables.py --check  # exit 1 if a block is out of date
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "docs" / "results.csv"
FILES = (ROOT / "docs" / "results.md", ROOT / "README.md")
BLOCK = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results -->)", re.S)


def rows(path: Path = CSV) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _accuracy(r: dict) -> str:
    mean, std = r["test_accuracy"], r["std"]
    return f"**{mean}**" + (f" ± {std}" if std else "") + ("" if r["seeds"] == "3" else f" ({r['seeds']} seed{'s' * (r['seeds'] != '1')})")


def render(table: str, all_rows: list[dict]) -> str:
    """The Markdown table of ``table``'s rows."""
    picked = [r for r in all_rows if r["table"] == table]
    if not picked:
        raise SystemExit(f"no rows for table {table!r} in {CSV}")
    lines = ["| what | labels per class (in total) | unlabelled images | test accuracy (%) | minutes (2 cores) |",
             "|---|---:|---:|---:|---:|"]
    for r in picked:
        what = f"[{r['what']}]({r['link']})" if r["link"] else r["what"]
        lines.append(f"| {what} | {r['labels_per_class']} | {r['unlabeled'] or '-'} | {_accuracy(r)} | {r['minutes']} |")
    return "\n".join(lines) + "\n"


def rewrite(text: str, all_rows: list[dict], relative_to: Path, root: Path = ROOT) -> str:
    def block(m):
        table = render(m.group(2), all_rows)
        if relative_to != root / "docs":  # links in the CSV are relative to docs/
            table = re.sub(r"\]\((?!https?:)([^)]+)\)", lambda x: f"](docs/{x.group(1)})", table)
        return m.group(1) + table + m.group(4)

    return BLOCK.sub(block, text)


def main(argv: list[str]) -> int:
    data, stale = rows(), []
    for path in FILES:
        old = path.read_text()
        new = rewrite(old, data, path.parent)
        if new != old:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(new)
    if stale and "--check" in argv:
        print("out of date: " + ", ".join(str(p.relative_to(ROOT)) for p in stale) + " (run scripts/results_tables.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

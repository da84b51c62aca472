"""The docs a newcomer reads stay true: the README is short, its key names and tables come from the
code and data, the key reference is the schema's."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MAX_README_WORDS = 1600


def test_the_readme_is_short():
    words = len(re.findall(r"\S+", README))
    assert words <= MAX_README_WORDS, words


def test_the_readme_starts_with_the_two_commands():
    first = README.split("```")[1]  # the first code block
    assert "kft train mobilenet_v2" in first and "python -m pytest" in first
    assert README.index("```") < 1200  # within the first screen


def test_the_key_reference_is_the_schemas():
    from kft.plan import key_reference

    assert (ROOT / "docs" / "plan.md").read_text() == key_reference(), "run: kft plan --keys --out docs/plan.md"


def test_every_plan_key_the_readme_names_exists():
    """Keys the README spells as `--set key=...` or in its plan excerpt are the schema's."""
    from kft.plan.reference import key_names

    known = {k for keys in key_names().values() for k in keys}
    named = set(re.findall(r"--set ([a-z_.]+)=", README))
    for key in named:
        parts = key.split(".")
        assert parts[-1] in known and all(p in known or p.isdigit() or p in ("probe", "top") for p in parts), key
    assert named  # the README shows --set at least once


def test_the_results_tables_are_generated_from_results_csv():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

"""kft.progress: plain lines in logs, a bar on terminals, silence when asked."""

import io

import pytest

from kft.progress import progress


@pytest.fixture(autouse=True)
def progress_on(monkeypatch):
    monkeypatch.delenv("KFT_PROGRESS", raising=False)


def test_plain_lines_when_not_a_terminal():
    log = io.StringIO()
    with progress("scoring", total=100, unit="img", stream=log) as bar:
        for _ in range(100):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines[0] == "scoring: started (100 img)"
    assert lines[-1].startswith("scoring: done, 100 img in ")
    middle = lines[1:-1]
    assert 5 <= len(middle) <= 10  # about every 10%, not every item
    assert middle[0] == "scoring: 10/100 img (10%)"


def test_terminal_gets_a_bar():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    with progress("caching", total=10, unit="img", stream=out) as bar:
        bar.update(10)
    assert "caching" in out.getvalue() and "10/10" in out.getvalue()


def test_off_by_environment_or_flag(monkeypatch):
    log = io.StringIO()
    with progress("x", total=3, stream=log, enabled=False) as bar:
        bar.update(3)
    monkeypatch.setenv("KFT_PROGRESS", "off")
    with progress("y", total=3, stream=log) as bar:
        bar.update(3)
    assert log.getvalue() == "" and bar.n == 3

"""One parser for every comma-separated option: the same errors for --seeds, --threads, --quantize."""

import pytest

from kft.errors import KftError
from kft.lists import parse_list


def test_values_and_one_line_errors_naming_the_option():
    assert parse_list("0, 1,2", "seeds", int, minimum=0) == (0, 1, 2)
    assert parse_list(["int8", "float32"], "quantize") == ("int8", "float32")
    for text, message in (("0,,1", "without empty items"), ("1,x", "not a whole number"),
                          ("1,1", "listed twice"), ("0", "at least 1")):
        with pytest.raises(KftError, match=message) as e:
            parse_list(text, "threads", int, minimum=1)
        assert str(e.value).startswith("--threads:") and "\n" not in str(e.value)

"""Each default written once (issue 30): the literals below appear in the package's code only where they are
defined; every other use names the constant. A second copy would drift the day one of them changes."""

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gmv_dagster"

# literal (as a regular expression over the source) -> the one file:line text that defines it
DEFINED_ONCE = {
    r"[\"']gmv\.duckdb[\"']": 'DATABASE = "gmv.duckdb"',
    r"[\"']gmv_home[\"'](?!:)": 'DEFAULT_HOME = "gmv_home"',  # not the resource's key, "gmv_home": ...
    r"(?<![=!<>])=\s*[\"']fail[\"']": 'ON_BAD_IMAGE = "fail"',  # an assignment or a default, not a comparison
    r"(?i)refer.*\b1000\b|\b1000\b.*refer": "REFERENCE_SIZE = 1000",  # the quality calibration's sample
}


def _code_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]  # a comment may name the value
            yield path.relative_to(PACKAGE.parent), number, code


@pytest.mark.parametrize("literal", DEFINED_ONCE)
def test_a_default_is_written_once(literal):
    found = [f"{path}:{number}: {code.strip()}" for path, number, code in _code_lines() if re.search(literal, code)]
    assert len(found) == 1 and found[0].endswith(DEFINED_ONCE[literal]), (
        "written more than once (use the constant):\n" + "\n".join(found)
    )

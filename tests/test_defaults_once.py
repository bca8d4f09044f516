"""Each default written once (issue 30): the literals below appear in the package's code only where they are
defined; every other use names the constant. A second copy would drift the day one of them changes."""

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gmv_dagster"

# what -> (the literal, as a regular expression over the code, and the one line that defines it)
DEFINED_ONCE = {
    "results file": (r"[\"']gmv\.duckdb[\"']", 'DATABASE = "gmv.duckdb"'),
    # not the resource's key, "gmv_home": ...
    "default home": (r"[\"']gmv_home[\"'](?!:)", 'DEFAULT_HOME = "gmv_home"'),
    # an assignment or a default, not a comparison
    "bad-image policy": (r"(?<![=!<>])=\s*[\"']fail[\"']", 'ON_BAD_IMAGE = "fail"'),
    "quality calibration sample": (r"(?i)refer.*\b1000\b|\b1000\b.*refer", "REFERENCE_SIZE = 1000"),
}


def _code_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]  # a comment may name the value
            yield path.relative_to(PACKAGE.parent), number, code


@pytest.mark.parametrize("default", DEFINED_ONCE)
def test_a_default_is_written_once(default):
    literal, definition = DEFINED_ONCE[default]
    found = [f"{path}:{number}: {code.strip()}" for path, number, code in _code_lines() if re.search(literal, code)]
    assert len(found) == 1 and found[0].endswith(definition), (
        f"the {default} is written more than once (use the constant):\n" + "\n".join(found)
    )

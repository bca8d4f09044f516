"""Figures README repeats from docs/RESULTS.md are the ones written there (one source per number)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section(page: str, name: str) -> str:
    match = re.search(rf"<!-- begin {re.escape(name)} -->\n(.*?)<!-- end {re.escape(name)} -->", page, re.S)
    assert match, f"docs/RESULTS.md has no section {name}"
    return match.group(1)


def test_readme_quotes_the_quality_benchmarks_last_line_as_written():
    results = section((ROOT / "docs" / "RESULTS.md").read_text(), "bench/quality_domains.py")
    written = re.findall(r"min_auc_blur=[\d.]+ min_auc_noise=[\d.]+ zero_q_clean=[\d.]+", results)
    quoted = re.findall(r"min_auc_blur=[\d.]+ min_auc_noise=[\d.]+ zero_q_clean=[\d.]+", (ROOT / "README.md").read_text())
    assert len(written) == 1 and quoted == written


def test_readme_quotes_c3_with_the_default_quality_as_results_gives_it():
    readme, results = (ROOT / "README.md").read_text(), (ROOT / "docs" / "RESULTS.md").read_text()
    quoted = re.search(r"with `matched_detail` C3 is ([\d.]+)", readme)
    assert quoted and f"**AUC {quoted.group(1)}**" in results

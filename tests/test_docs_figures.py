"""Figures README repeats from docs/RESULTS.md are the ones written there (one source per number)."""

import re
from pathlib import Path

from gmv_dagster.common.files import marked_sections

ROOT = Path(__file__).resolve().parents[1]


def section(page: str, name: str) -> str:
    found = [block for block in marked_sections(page) if block.startswith(f"<!-- begin {name} -->")]
    assert len(found) == 1, f"docs/RESULTS.md has no section {name}"
    return found[0]


def test_readme_quotes_the_quality_benchmarks_last_line_as_written():
    results = section((ROOT / "docs" / "RESULTS.md").read_text(), "bench/quality_domains.py")
    written = re.findall(r"min_auc_blur=[\d.]+ min_auc_noise=[\d.]+ zero_q_clean=[\d.]+", results)
    quoted = re.findall(
        r"min_auc_blur=[\d.]+ min_auc_noise=[\d.]+ zero_q_clean=[\d.]+", (ROOT / "README.md").read_text()
    )
    assert len(written) == 1 and quoted == written


def test_readme_quotes_c3_with_the_default_quality_as_results_gives_it():
    readme, results = (ROOT / "README.md").read_text(), (ROOT / "docs" / "RESULTS.md").read_text()
    quoted = re.search(r"with `matched_detail` C3 is ([\d.]+)", readme)
    assert quoted and f"**AUC {quoted.group(1)}**" in results


def quality_stage_ms() -> dict[tuple[str, str], str]:
    """(domain, metric) -> "ms / image from files" as docs/RESULTS.md's quality table prints it."""
    table = section((ROOT / "docs" / "RESULTS.md").read_text(), "bench/quality_domains.py")
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")
    ]
    header, body = rows[0], rows[1:]
    at = header.index("ms / image from files")
    return {(row[0].split(" ")[0], row[2]): row[at] for row in body}


def test_quality_stage_timings_quoted_in_readme_and_performance_are_the_benchmarks():
    ms = quality_stage_ms()
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"scores a 28-px image in ([\d.]+) ms against NIQE's ([\d.]+)", readme)
    assert quoted and quoted.groups() == (ms["fashion-28", "matched_detail"], ms["fashion-28", "niqe_refit"])
    performance = (ROOT / "docs" / "PERFORMANCE.md").read_text()
    quoted = re.search(
        r"\*\*([\d.]+) ms\*\* at 28 px \(NIQE ([\d.]+)\), \*\*([\d.]+) ms\*\* at 256 px \(NIQE ([\d.]+)\), "
        r"([\d.]+) ms at 512 px",
        performance,
    )
    assert quoted and quoted.groups() == (
        ms["fashion-28", "matched_detail"],
        ms["fashion-28", "niqe_refit"],
        ms["photos-256", "matched_detail"],
        ms["photos-256", "niqe_refit"],
        ms["photos-512", "matched_detail"],
    )

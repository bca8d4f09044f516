"""The marked sections a benchmark writes into a page: replaced in place on a rerun, never appended twice."""

import pytest

from gmv_dagster.common.files import marked_sections, put_marked_section


def test_a_section_is_replaced_in_place_and_the_rest_of_the_page_kept(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# title\n\ntext\n")
    put_marked_section(page, "bench/a.py-vae", "first")
    put_marked_section(page, "bench/b.py", "other")
    put_marked_section(page, "bench/a.py-vae", "second")
    assert page.read_text() == (
        "# title\n\ntext\n\n<!-- begin bench/a.py-vae -->\nsecond\n<!-- end bench/a.py-vae -->\n\n"
        "<!-- begin bench/b.py -->\nother\n<!-- end bench/b.py -->\n"
    )
    assert marked_sections(page.read_text()) == [
        "<!-- begin bench/a.py-vae -->\nsecond\n<!-- end bench/a.py-vae -->\n",
        "<!-- begin bench/b.py -->\nother\n<!-- end bench/b.py -->\n",
    ]


def test_a_name_the_markers_could_not_find_again_is_refused(tmp_path):
    page = tmp_path / "page.md"
    with pytest.raises(ValueError, match="letters, digits and"):
        put_marked_section(page, "bench/a.py vae", "body")  # a space: each run would append another copy
    assert not page.exists()

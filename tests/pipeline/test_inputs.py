"""The digests `gmv run` compares to decide what is new, and the plan it draws from them (no Dagster)."""

import os

from gmv_dagster.pipeline.inputs import (
    Plan,
    ValuationInputs,
    files_digest,
    plan_run,
    read_state,
    settings_digest,
    valuation_inputs,
    write_state,
)


def test_a_folders_digest_changes_with_a_file_added_rewritten_or_renamed_and_not_with_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1234")
    before = files_digest(tmp_path)
    assert files_digest(tmp_path) == before
    (tmp_path / "a" / "y.png").write_bytes(b"5")
    added = files_digest(tmp_path)
    assert added != before
    os.utime(tmp_path / "a" / "y.png", ns=(1, 1))  # same bytes, another modification time
    touched = files_digest(tmp_path)
    assert touched != added
    (tmp_path / "a" / "y.png").rename(tmp_path / "a" / "z.png")
    assert files_digest(tmp_path) not in {before, added, touched}
    assert files_digest(tmp_path / "missing") != files_digest(tmp_path / "missing2")


def test_settings_that_change_results_count_and_where_or_how_loudly_it_runs_does_not():
    base = settings_digest({"GMV_BACKBONE": "pixels", "PATH": "/bin"}, {"loggers": {"console": {}}})
    assert settings_digest({"GMV_BACKBONE": "pixels", "PATH": "/usr/bin", "GMV_EXECUTOR": "celery"}, {}) == base
    assert settings_digest({"GMV_BACKBONE": "similarity"}, {}) != base
    assert settings_digest({"GMV_BACKBONE": "pixels"}, {"resources": {"method": {"config": {"k": 5}}}}) != base


def test_the_plan_runs_only_what_changed(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "t.png").write_bytes(b"t")
    (tmp_path / "b1").mkdir()
    (tmp_path / "b2").mkdir()
    (tmp_path / "b2" / "g.png").write_bytes(b"g")
    env = {"GMV_BACKBONE": "pixels"}
    one = valuation_inputs(env, {}, [tmp_path / "train"], {"b1": [tmp_path / "b1"]})
    done = ValuationInputs(one.common, one.batches, values_version="v1", run_id="r1")
    assert plan_run(None, one, "v1") == Plan(True, reason="no earlier run recorded in this home")
    assert plan_run(done, one, "v1").nothing_new
    assert plan_run(done, one, "v2").everything  # someone else wrote training_values since
    two = valuation_inputs(env, {}, [tmp_path / "train"], {"b1": [tmp_path / "b1"], "b2": [tmp_path / "b2"]})
    assert plan_run(done, two, "v1") == Plan(False, ["b2"], reason="new or changed batch(es): b2")
    assert plan_run(ValuationInputs(two.common, two.batches, "v1"), one, "v1").everything  # b2 is gone
    (tmp_path / "train" / "t2.png").write_bytes(b"u")
    retrained = valuation_inputs(env, {}, [tmp_path / "train"], {"b1": [tmp_path / "b1"]})
    assert plan_run(done, retrained, "v1").everything
    write_state(tmp_path, done)
    assert read_state(tmp_path) == done
    (tmp_path / "valued_inputs.json").write_text("{not json")
    assert read_state(tmp_path) is None

"""The criteria job on a small demo: every criterion for every method, in one DuckDB table with plots."""

import dagster as dg
import duckdb
import polars as pl
import pytest

from gmv_dagster.assets.reports import CRITERIA, REPORT_ASSETS
from gmv_dagster.assets.reports.tables import results_markdown
from gmv_dagster.definitions import build_definitions
from gmv_dagster.method.core import DEFAULTS
from gmv_dagster.runner import run_valuation

SMALL = {
    "ops": {
        "training_images": {"config": {"demo_size": 600}},
        # 60 VAE epochs on 600 images (about 3 s): at 2 its samples were blobs with no detail left, which the default
        # quality (matched_detail) rightly values 0, every one of them, leaving the reports nothing to compare
        "demo_generator": {"config": {"epochs": 60, "n_samples": 60, "diffusion_steps": 20, "sample_steps": 4}},
        "quality_calibration": {"config": {"reference_size": 40}},
        "criterion_fidelity": {"config": {"methods": ["gmv", "tracin", "random"]}},
        "similarity_model": {"config": {"steps": 20}},  # the default backbone (learned), trained briefly
        "criterion_lds": {"config": {"subsets": 8}},
        "criterion_group_lds": {"config": {"subsets": 4, "group_size": 100}},  # 10 classes; 6 random groups
        "criterion_ood": {"config": {"k": 20, "n_generated": 60}},  # C3's own k and generations (defaults 50, 5,000)
    },
    "resources": {"method": {"config": {"index_mode": "hnsw"}}},
}


@pytest.fixture(scope="module")
def criteria_run(tmp_path_factory, fashion_mnist_dir):
    home = tmp_path_factory.mktemp("reports") / "home"
    defs = build_definitions(home, env={"GMV_FASHION_MNIST_DIR": str(fashion_mnist_dir)})
    result = run_valuation(home, dg.DagsterInstance.ephemeral(), SMALL, defs=defs, with_reports=True)
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        report = con.execute("SELECT * FROM criterion_report").pl()
        values = con.execute("SELECT * FROM training_values").pl()
        method_values = con.execute("SELECT * FROM method_values").pl()
    return result, report, values, method_values


def test_every_criterion_covers_the_method_and_every_baseline(criteria_run):
    result, report, values, method_values = criteria_run
    assert result.success
    criteria = set(report["criterion"])
    assert criteria == {
        "C1 identical class",
        "C2 identical attributes",
        "C3 out-of-distribution",
        "C4 efficiency",
        "fidelity",
        "diversity",
        "consistency",
        "reasonableness",
        "LDS",
        "group LDS",
    }
    ran = {"gmv", "gmv_q1", "gmv_exact", "gmv_pixels", "gmv_rerank_l2", "random", "uniform", "tracin"}  # gmv: learned
    for criterion in (
        "C1 identical class",
        "C2 identical attributes",
        "C3 out-of-distribution",
        "diversity",
        "reasonableness",
        "LDS",
    ):
        assert set(report.filter(pl.col("criterion") == criterion)["method"]) >= ran, criterion
    # the flips setting the pipeline did not use, beside gmv wherever the reports rerun the method (LDS lists its own)
    other = "gmv_upright" if DEFAULTS.match.flips else "gmv_flips"
    for criterion in ("C1 identical class", "C2 identical attributes", "C3 out-of-distribution", "reasonableness"):
        flips = report.filter((pl.col("criterion") == criterion) & (pl.col("method") == other))
        assert flips.height and flips["value"].is_not_null().any(), criterion
    # lpips has no weights here: reported as not run, with the reason, never silently replaced
    lpips = report.filter(pl.col("method") == "gmv_rerank_lpips")
    assert lpips.height and lpips["value"].is_null().all() and lpips["note"].str.contains("AlexNet").all()
    # the method's values in the report are the pipeline's values
    gmv = method_values.filter(pl.col("method") == "gmv").join(values, on="train_id", suffix="_pipeline")
    assert gmv.height == values.height and (gmv["value"] - gmv["value_pipeline"]).abs().max() < 1e-12


def test_report_values_are_in_range_and_intervals_bracket_them(criteria_run):
    _, report, _, _ = criteria_run
    shares = report.filter(pl.col("criterion").is_in(["C1 identical class", "C2 identical attributes"]))
    assert shares["value"].is_between(0, 1).all() and shares["n"].min() == 60
    bracketed = report.filter(pl.col("ci_low").is_not_null())
    assert (bracketed["ci_low"] <= bracketed["value"] + 1e-12).all() and (
        bracketed["value"] <= bracketed["ci_high"] + 1e-12
    ).all()
    auc = report.filter((pl.col("metric") == "AUC (OOD valued lower)") & (pl.col("method") == "uniform"))
    assert auc["value"].to_list() == [0.5] * auc.height  # all values tie
    c3 = report.filter((pl.col("criterion") == "C3 out-of-distribution") & (pl.col("setting") == "all kinds"))
    assert c3.filter(pl.col("metric") == "precision at bottom-k")["n"].unique().to_list() == [32]  # 5% of 632
    # GMValuator's values are >= 0: a clean image it leaves at 0 can at best tie with an OOD one
    bound = dict(c3.filter(pl.col("metric") == "AUC bound (1 + coverage) / 2").select("method", "value").iter_rows())
    c3_auc = dict(c3.filter(pl.col("metric") == "AUC (OOD valued lower)").select("method", "value").iter_rows())
    assert c3_auc["gmv"] <= bound["gmv"] + 1e-12 < 1.0 and bound["uniform"] == 1.0
    copies = report.filter((pl.col("criterion") == "reasonableness") & (pl.col("metric") == "source in top-10"))
    top10 = dict(copies.select("method", "value").iter_rows())
    assert top10["gmv"] > 0.5 > top10["random"] and copies["n"].unique().to_list() == [200]
    fidelity = report.filter(pl.col("criterion") == "fidelity")
    assert set(fidelity["setting"]) >= {"top 10%", "random 10%", "bottom 10%"}
    consistency = report.filter((pl.col("criterion") == "consistency") & (pl.col("metric") == "spearman"))
    assert {
        "ANN (HNSW bf16) vs exact",
        "HNSW bf16 vs f32",
        "generation seed",
        "generator family (vae vs diffusion)",
    } <= set(consistency["setting"])
    ann = consistency.filter(pl.col("setting") == "ANN (HNSW bf16) vs exact")["value"][0]
    assert 0.9 < ann <= 1.0
    tracin_family = consistency.filter(
        (pl.col("method") == "tracin") & pl.col("setting").str.starts_with("generator family")
    )
    assert tracin_family["value"].is_null().all() and "needs the demo VAE" in tracin_family["note"][0]


def test_lds_has_a_bracketed_correlation_for_every_attributing_method_and_its_ceilings_beside(criteria_run):
    """Two seeds per subset (the default): every method against their mean and against one seed, and beside them the
    ceiling that seed noise leaves (from the two seeds' agreement, named in the note) and the ridge datamodel's."""
    _, report, _, _ = criteria_run
    lds = report.filter(pl.col("criterion") == "LDS")
    assert set(lds["setting"]) == {"against the seeds' mean", "against one seed"}
    methods = lds.filter(pl.col("metric") == "LDS")
    scored = methods.filter(pl.col("value").is_not_null())
    for setting in ("against the seeds' mean", "against one seed"):
        ran = set(scored.filter(pl.col("setting") == setting)["method"])
        assert ran >= {"gmv", "gmv_pixels", "gmv_rerank_l2", "random", "tracin"}
    assert scored["value"].is_between(-1, 1).all() and (scored["n"] > 0).all()
    assert ((scored["ci_low"] <= scored["value"] + 1e-12) & (scored["value"] <= scored["ci_high"] + 1e-12)).all()
    uniform = methods.filter(pl.col("method") == "uniform")
    assert uniform["value"].is_null().all() and "every subset sums to the same" in uniform["note"][0]
    ceilings = lds.filter(pl.col("metric") == "LDS ceiling").sort("method", "setting")
    assert ceilings.select("method", "setting").rows() == [
        ("ceiling: ridge datamodel", "against one seed"),
        ("ceiling: ridge datamodel", "against the seeds' mean"),
        ("ceiling: seed noise", "against one seed"),
        ("ceiling: seed noise", "against the seeds' mean"),
    ]
    noise = ceilings.filter(pl.col("method") == "ceiling: seed noise")
    assert noise["value"].is_between(0, 1).all() and noise["note"].str.contains(r"r = -?\d\.\d{3}").all()
    one, mean = noise.sort("setting")["value"].to_list()  # averaging two seeds never lowers the ceiling
    assert mean >= one
    # each method's row names the ceilings of its setting (the headline shows them in its notes)
    gmv = methods.filter(pl.col("method") == "gmv").sort("setting")
    assert gmv["note"].str.starts_with("ceilings against one seed: seed noise ").to_list() == [True, False]
    assert f"seed noise {mean:.3f}, ridge datamodel " in gmv["note"][1]
    assert ceilings.filter(pl.col("method") == "ceiling: ridge datamodel")["value"].is_between(-1, 1).all()


def test_group_lds_scores_every_attributing_method_on_classes_and_on_random_groups(criteria_run):
    _, report, _, _ = criteria_run
    groups = report.filter(pl.col("criterion") == "group LDS")
    assert set(groups["setting"]) == {"classes", "random groups of 100"}
    scored = groups.filter(pl.col("value").is_not_null())
    for setting in ("classes", "random groups of 100"):
        assert set(scored.filter(pl.col("setting") == setting)["method"]) >= {"gmv", "gmv_pixels", "random", "tracin"}
    assert scored["value"].is_between(-1, 1).all() and (scored["n"] > 0).all()
    assert ((scored["ci_low"] <= scored["value"] + 1e-12) & (scored["value"] <= scored["ci_high"] + 1e-12)).all()
    assert set(scored.filter(pl.col("setting") == "classes")["note"].str.extract(r"^(\d+) groups").to_list()) == {"10"}
    uniform = groups.filter(pl.col("method") == "uniform")
    assert uniform["value"].is_null().all() and "only the subset's size varies" in uniform["note"][0]


def test_criterion_assets_carry_a_plot_and_a_summary_and_the_page_renders(criteria_run):
    result, report, _, _ = criteria_run
    for asset in (
        "criterion_classes",
        "criterion_reasonableness",
        "criterion_ood",
        "criterion_fidelity",
        "criterion_consistency",
        "criterion_lds",
        "criterion_group_lds",
        "criterion_diversity",
        "criterion_efficiency",
        "criterion_report",
    ):
        metadata = result.asset_materializations_for_node(asset)[0].metadata
        assert metadata["plot"].value.startswith("![plot](data:image/png;base64,"), asset
        assert "| method |" in metadata["summary"].value, asset
    c3 = result.asset_materializations_for_node("criterion_ood")[0].metadata
    assert (c3["k"].value, c3["n_generated"].value) == (20, 60)  # its own k and generations, from its config
    assert "60 generations, each crediting its k = 20 nearest (the pipeline's temperature)" in c3["summary"].value
    page = results_markdown(report, "# header\n", CRITERIA)
    assert "## Headline" in page and "| gmv |" in page and "| tracin |" in page and "C3 AUC" in page
    assert "group LDS (classes)" in page and "## group LDS: group LDS" in page  # the registry's new criterion


def test_report_tables_describe_every_column(criteria_run):
    result = criteria_run[0]
    described = set()
    for assets in REPORT_ASSETS:
        for materialisation in result.asset_materializations_for_node(assets.node_def.name):
            table = materialisation.asset_key.to_user_string()
            columns = materialisation.metadata["dagster/column_schema"].value.columns
            assert [c.name for c in columns if not c.description] == [], table
            described.add(materialisation.asset_key)
    assert described == {key for assets in REPORT_ASSETS for key in assets.keys}

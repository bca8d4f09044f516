"""Properties of the method on random data (hypothesis): what must hold for any training set, any generations."""

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from gmv_dagster.method.credit import compute_credits, softmax_weights, training_values
from gmv_dagster.method.matching import (
    IndexShard,
    MatchParams,
    matches_table,
    search_shards,
)
from gmv_dagster.method.search import exact_topk


def value(train, gen, q, k, tau, train_ids, gen_ids, metric="cos"):
    params = MatchParams(k=k, candidates=k, metric=metric)
    idx, dist = search_shards(train, gen, params, [IndexShard(0, len(train))])
    matches = matches_table(gen_ids, train_ids, idx, dist, k)
    credits = compute_credits(matches, pl.DataFrame({"gen_id": gen_ids, "q": q}), tau)
    return training_values(credits, pl.Series(train_ids)), credits


# Continuous random vectors (no distance ties, almost surely): the cases are drawn by seed and size.
cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(1, 40),
        "m": st.integers(1, 12),
        "d": st.integers(2, 8),
        "k_frac": st.floats(0, 1),
        "tau": st.floats(1e-3, 10.0),
        "metric": st.sampled_from(["cos", "l2sq"]),
    }
)


def draw(case):
    rng = np.random.default_rng(case["seed"])
    train = rng.normal(size=(case["n"], case["d"])).astype(np.float32)
    gen = rng.normal(size=(case["m"], case["d"])).astype(np.float32)
    q = rng.uniform(0, 1, case["m"])
    k = 1 + int(case["k_frac"] * (case["n"] - 1))
    return rng, train, gen, q, k


@settings(max_examples=60, deadline=None)
@given(cases)
def test_values_sum_to_total_quality_and_are_never_negative(case):
    _, train, gen, q, k = draw(case)
    values, _ = value(
        train,
        gen,
        q,
        k,
        case["tau"],
        [f"t{i}" for i in range(len(train))],
        [f"g{j}" for j in range(len(gen))],
        case["metric"],
    )
    assert np.isclose(values["value"].sum(), q.sum(), rtol=1e-9, atol=1e-12)
    assert (values["value"] >= 0).all()
    assert values.height == len(train)


@settings(max_examples=60, deadline=None)
@given(cases)
def test_values_do_not_depend_on_the_order_or_the_names_of_ids(case):
    rng, train, gen, q, k = draw(case)
    ids, gen_ids = [f"t{i}" for i in range(len(train))], [f"g{j}" for j in range(len(gen))]
    before, _ = value(train, gen, q, k, case["tau"], ids, gen_ids, case["metric"])
    perm, gperm = rng.permutation(len(train)), rng.permutation(len(gen))
    renamed = {f"t{i}": f"img-{rng.integers(1 << 40):x}-{i}" for i in range(len(train))}
    after, _ = value(
        train[perm],
        gen[gperm],
        q[gperm],
        k,
        case["tau"],
        [renamed[ids[i]] for i in perm],
        [f"other-{gen_ids[j]}" for j in gperm],
        case["metric"],
    )
    back = after.with_columns(pl.col("train_id").replace({v: key for key, v in renamed.items()}))
    joined = before.join(back, on="train_id", suffix="_after")
    assert joined.height == len(train)
    np.testing.assert_allclose(joined["value_after"], joined["value"], rtol=1e-12, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(cases)
def test_k_1_gives_all_of_a_generated_images_quality_to_its_nearest(case):
    _, train, gen, q, _ = draw(case)
    ids, gen_ids = [f"t{i}" for i in range(len(train))], [f"g{j}" for j in range(len(gen))]
    _, credits = value(train, gen, q, 1, case["tau"], ids, gen_ids, case["metric"])
    nearest, _ = exact_topk(train, gen, 1, case["metric"])
    expected = pl.DataFrame({"gen_id": gen_ids, "train_id": [ids[i] for i in nearest[:, 0]], "credit": q})
    assert credits.select("gen_id", "train_id", "credit").sort("gen_id").equals(expected.sort("gen_id"))


@settings(max_examples=40, deadline=None)
@given(cases)
def test_temperature_limits_nearest_takes_all_and_uniform(case):
    _, train, gen, q, k = draw(case)
    ids, gen_ids = [f"t{i}" for i in range(len(train))], [f"g{j}" for j in range(len(gen))]
    _, cold = value(train, gen, q, k, 1e-12, ids, gen_ids, case["metric"])
    _, hot = value(train, gen, q, k, 1e12, ids, gen_ids, case["metric"])
    by_gen = pl.DataFrame({"gen_id": gen_ids, "q": q})
    first = cold.filter(pl.col("rank") == 1).join(by_gen, on="gen_id")
    gaps = cold.filter(pl.col("rank") == 2).join(first.select("gen_id", d1="distance"), on="gen_id")
    # nearest takes all, unless the second is as near as makes no difference at tau = 1e-12
    if gaps.height == 0 or (gaps["distance"] - gaps["d1"]).min() > 1e-9:
        np.testing.assert_allclose(first["credit"], first["q"], rtol=1e-12)
    uniform = hot.join(by_gen, on="gen_id").with_columns(expected=pl.col("q") / k)
    np.testing.assert_allclose(uniform["credit"], uniform["expected"], rtol=1e-9)


@given(st.lists(st.floats(0, 1e3), min_size=1, max_size=20), st.floats(1e-6, 1e6))
def test_weights_are_a_distribution_decreasing_in_distance(distances, tau):
    w = softmax_weights(np.array([distances]), tau)[0]
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all()
    order = np.argsort(distances, kind="stable")
    assert (np.diff(w[order]) <= 1e-12).all()

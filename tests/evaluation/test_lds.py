"""LDS on data with a known answer: outputs that are an exact linear datamodel give LDS 1, their negation -1,
attributions unrelated to the outputs about 0; undefined samples are left out and counted; the DDPM's model output."""

import numpy as np
import pytest
import torch

from gmv_dagster.demo.diffusion import (
    DiffusionParams,
    SmallUNet,
    cosine_alpha_bar,
    train_ddpm,
)
from gmv_dagster.demo.generator import DemoGenerator, GeneratorSpec
from gmv_dagster.evaluation.lds import (
    ddpm_log_likelihoods,
    group_subsets,
    linear_datamodeling_score,
    marginal_vae_outputs,
    model_outputs,
    random_groups,
    random_subsets,
)


def test_random_subsets_are_seeded_halves():
    masks = random_subsets(100, 32, 0.5, seed=3)
    assert masks.shape == (32, 100) and (masks.sum(1) == 50).all()
    assert np.array_equal(masks, random_subsets(100, 32, 0.5, seed=3))
    assert not np.array_equal(masks, random_subsets(100, 32, 0.5, seed=4))
    assert len({m.tobytes() for m in masks}) == 32
    with pytest.raises(ValueError, match="0 < fraction < 1"):
        random_subsets(100, 32, 1.0)


def test_group_subsets_keep_or_drop_whole_groups_and_random_groups_partition_the_images():
    groups = np.array(["a", "b", "c", "d"] * 25)  # 4 groups of 25, interleaved
    masks = group_subsets(groups, 12, 0.5, seed=2)
    assert masks.shape == (12, 100) and (masks.sum(1) == 50).all()  # 2 of the 4 groups each time
    for mask in masks:  # every image of a group shares its fate
        assert all(len(set(mask[groups == g])) == 1 for g in "abcd")
    assert np.array_equal(masks, group_subsets(groups, 12, 0.5, seed=2))
    with pytest.raises(ValueError, match="at least 2 groups"):
        group_subsets(np.zeros(10), 4)
    parts = random_groups(250, 100, seed=1)
    assert sorted(np.bincount(parts).tolist()) == [50, 100, 100]
    assert not np.array_equal(parts, random_groups(250, 100, seed=2))
    # a datamodel over groups: each group's effect is carried by its images' summed attribution
    rng = np.random.default_rng(0)
    effect = rng.normal(size=(5, 4))  # 5 samples x 4 groups
    attribution = effect[:, np.searchsorted(np.array(list("abcd")), groups)] / 25
    outputs = masks.astype(float) @ attribution.T
    assert linear_datamodeling_score(attribution, masks, outputs).mean == pytest.approx(1.0)


def test_an_exact_linear_datamodel_scores_one_its_negation_minus_one_and_noise_about_zero():
    rng = np.random.default_rng(0)
    m, n = 20, 60
    true = rng.exponential(size=(m, n))
    masks = random_subsets(n, 40, seed=1)
    outputs = masks.astype(float) @ true.T  # each model's output is exactly the sum of its images' effects
    exact = linear_datamodeling_score(true, masks, outputs)
    assert exact.mean == pytest.approx(1.0) and exact.defined == m and exact.low == pytest.approx(1.0)
    assert linear_datamodeling_score(true, masks, -outputs).mean == pytest.approx(-1.0)
    unrelated = linear_datamodeling_score(rng.exponential(size=(m, n)), masks, outputs)
    assert abs(unrelated.mean) < 0.2 and unrelated.low < unrelated.mean < unrelated.high


def test_a_sample_with_constant_predictions_is_left_out_and_counted():
    masks = random_subsets(10, 8, seed=0)
    a = np.zeros((2, 10))
    a[1, 3] = 1.0
    outputs = np.stack([np.arange(8.0), masks[:, 3].astype(float)], 1)
    result = linear_datamodeling_score(a, masks, outputs)
    assert np.isnan(result.per_sample[0]) and result.defined == 1 and result.mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes do not fit"):
        linear_datamodeling_score(a, masks, outputs.T)


def test_listed_contributors_become_a_dense_attribution_matrix_with_zeros_elsewhere():
    import polars as pl

    from gmv_dagster.evaluation.lds import attribution_matrix

    contributors = pl.DataFrame(
        {"gen_id": ["g1", "g0", "g1"], "train_id": ["t2", "t0", "t0"], "score": [0.25, 1.0, 0.5]}
    )
    a = attribution_matrix(contributors, ["g0", "g1"], ["t0", "t1", "t2"])
    np.testing.assert_array_equal(a, [[1.0, 0.0, 0.0], [0.5, 0.0, 0.25]])
    with pytest.raises(ValueError, match="not in the generated set, e.g. 'g9'"):
        attribution_matrix(contributors.with_columns(gen_id=pl.lit("g9")), ["g0"], ["t0", "t1", "t2"])


def test_a_vae_explains_the_images_it_was_trained_on_better_than_noise():
    from gmv_dagster.demo.generator import TrainParams, train_cvae
    from gmv_dagster.evaluation.lds import vae_log_likelihoods

    rng = np.random.default_rng(0)
    images = [
        np.clip(rng.normal(40, 10, (28, 28)) + 180 * (np.arange(28) % 7 < 3), 0, 255).astype(np.uint8)
        for _ in range(64)
    ]
    labels = ["stripes"] * 32 + ["also"] * 32
    model, classes = train_cvae(images, labels, TrainParams(epochs=3, seed=0))
    noise = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(8)]
    seen = vae_log_likelihoods(model, classes, images[:8], labels[:8])
    unseen = vae_log_likelihoods(model, classes, noise, labels[:8])
    assert seen.shape == (8,) and (seen > unseen).all()
    np.testing.assert_array_equal(seen, vae_log_likelihoods(model, classes, images[:8], labels[:8]))  # z = mu
    with pytest.raises(ValueError, match="are not classes of the generator"):
        vae_log_likelihoods(model, classes, images[:1], ["cat"])
    # the output over a subset's classes: log-mean-exp of the ELBOs under each class the model knows, whatever the
    # image's own label (float64 sums of the same ELBOs: equal to rounding)
    generator = DemoGenerator(GeneratorSpec(), model, classes)
    per_class = np.stack([vae_log_likelihoods(model, classes, noise, [c] * len(noise)) for c in classes])
    expected = np.log(np.exp(per_class - per_class.max(0)).mean(0)) + per_class.max(0)
    np.testing.assert_allclose(marginal_vae_outputs(generator, noise), expected, rtol=1e-12)
    assert (marginal_vae_outputs(generator, images[:8]) > marginal_vae_outputs(generator, noise)).all()


def test_the_ddpm_output_is_minus_its_seeded_denoising_loss_and_grows_with_training():
    rng = np.random.default_rng(0)
    images = [np.clip(rng.normal(60 + 120 * (i % 2), 20, (28, 28)), 0, 255).astype(np.uint8) for i in range(16)]
    labels = ["dark" if i % 2 == 0 else "light" for i in range(16)]
    params = DiffusionParams(steps=150, channels=8, timesteps=50)
    trained, classes = train_ddpm(images, labels, params)
    out = ddpm_log_likelihoods(trained, classes, images, labels, params.timesteps, points=4, seed=2)
    assert out.shape == (16,) and np.isfinite(out).all()
    assert np.array_equal(
        out, ddpm_log_likelihoods(trained, classes, images, labels, params.timesteps, points=4, seed=2)
    )
    spec = GeneratorSpec("diffusion", diffusion=params)
    assert np.array_equal(
        model_outputs(DemoGenerator(spec, trained, classes), images, labels, seed=2),
        ddpm_log_likelihoods(trained, classes, images, labels, params.timesteps, seed=2),
    )
    # one timestep (t = 0), by hand: minus the mean squared error of the predicted noise
    torch_gen = torch.Generator().manual_seed(2)
    noise = torch.randn(16, 1, 1, 28, 28, generator=torch_gen)[:, 0]
    x0 = torch.from_numpy(np.stack(images)).float()[:, None] / 255 * 2 - 1
    a = cosine_alpha_bar(params.timesteps)[0]
    with torch.inference_mode():
        eps = trained(
            a.sqrt() * x0 + (1 - a).sqrt() * noise,
            torch.zeros(16, dtype=torch.int64),
            torch.tensor([classes.index(label) for label in labels]),
        )
    by_hand = -((eps - noise) ** 2).flatten(1).mean(1).double().numpy()
    assert ddpm_log_likelihoods(trained, classes, images, labels, params.timesteps, points=1, seed=2) == pytest.approx(
        by_hand, rel=1e-5
    )
    # a trained model explains its training images better than an untrained one
    torch.manual_seed(0)
    untrained = SmallUNet(len(classes), params.channels).eval()
    assert (
        out.mean() > ddpm_log_likelihoods(untrained, classes, images, labels, params.timesteps, points=4, seed=2).mean()
    )
    with pytest.raises(ValueError, match=r"labels \['grey'\] are not classes of the generator"):
        ddpm_log_likelihoods(trained, classes, images[:1], ["grey"], params.timesteps)


def test_columnwise_spearman_is_scipys_spearman_per_column_and_nan_where_constant():
    from scipy import stats

    from gmv_dagster.evaluation.lds import columnwise_spearman

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    a[:, 1] = np.round(a[:, 1])  # ties
    b[:, 2] = a[:, 2] ** 3  # monotone: 1
    a[:, 4] = 7.0  # constant: undefined
    got = columnwise_spearman(a, b)
    for j in range(4):  # float64 sums of the same ranks in another order: equal to rounding
        assert got[j] == pytest.approx(stats.spearmanr(a[:, j], b[:, j]).statistic, abs=1e-12)
    assert got[2] == pytest.approx(1.0) and np.isnan(got[4])


def test_the_seed_noise_ceiling_is_what_the_true_datamodel_reaches_through_that_noise():
    """Outputs = an exact linear datamodel + independent noise per seed of the same size as the signal: the two
    seeds agree r ~ 0.5, the true attribution's LDS against one seed is sqrt(r) ~ 0.71 and against their mean
    sqrt(2r / (1 + r)) ~ 0.82; the ceilings computed from r alone match both (sampling error over 64 subsets and
    200 samples is about 0.01; the tolerance is 0.03)."""
    from gmv_dagster.evaluation.lds import seed_noise

    rng = np.random.default_rng(0)
    m, n, S = 200, 400, 64
    true = rng.normal(size=(m, n)) * (rng.random((m, n)) < 0.05)
    masks = random_subsets(n, S, seed=1)
    signal = masks.astype(float) @ true.T
    outputs = np.stack([signal + rng.normal(size=signal.shape) * signal.std(0) for _ in range(2)])
    noise = seed_noise(outputs)
    assert noise.seeds == 2 and noise.agreement == pytest.approx(0.5, abs=0.05)
    assert noise.ceiling(1) == pytest.approx(linear_datamodeling_score(true, masks, outputs[0]).mean, abs=0.03)
    assert noise.ceiling(2) == pytest.approx(linear_datamodeling_score(true, masks, outputs.mean(0)).mean, abs=0.03)
    assert noise.ceiling(2) > noise.ceiling(1)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_noise(outputs[:1])


def test_the_ridge_datamodel_learns_a_linear_law_it_can_see_and_finds_nothing_in_noise():
    """Outputs that follow each subset's count per group (4 groups) are predicted on held-out subsets from those
    counts (LDS near 1); outputs of pure noise are not (LDS near 0, a little below: a held-out subset's own output is
    missing from the mean its prediction shrinks to)."""
    from gmv_dagster.evaluation.lds import ridge_datamodel_lds

    rng = np.random.default_rng(1)
    groups = np.arange(200) % 4
    masks = random_subsets(200, 40, seed=2)
    counts = np.stack([masks[:, groups == g].sum(1) for g in range(4)], 1).astype(float)
    outputs = counts @ rng.normal(size=(4, 30)) + 0.1 * rng.normal(size=(40, 30))
    learned = ridge_datamodel_lds(masks, outputs, features=counts)
    assert learned.mean > 0.9 and learned.defined == 30
    noise = ridge_datamodel_lds(masks, rng.normal(size=(40, 30)))
    assert -0.25 < noise.mean < 0.1
    with pytest.raises(ValueError, match="S >= 2 x folds"):
        ridge_datamodel_lds(masks[:6], outputs[:6])


def test_retrained_outputs_are_cached_and_do_not_depend_on_the_pool(tmp_path):
    """Two seeds x three subsets of a tiny VAE, in a pool of 2 spawned processes (one thread each) and one after
    another here: the same outputs (to float32 rounding of one thread against several), and a second call trains
    nothing (every checkpoint reused)."""
    from gmv_dagster.demo.generator import TrainParams
    from gmv_dagster.evaluation.retrain import OutputOf, TrainingSet, retrain_seeds, retrained_outputs

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(24)]
    labels = ["a", "b"] * 12
    train = TrainingSet(images, [f"h{i}" for i in range(24)], labels)
    spec = GeneratorSpec(vae=TrainParams(epochs=1, prior_components=0, snapshots=0, seed=5))
    masks = random_subsets(24, 3, seed=0)
    output = OutputOf(images[:4], labels[:4])
    seeds = retrain_seeds(spec, 2)
    assert seeds == [5, 6]
    pooled = retrained_outputs(spec, train, masks, seeds, output, tmp_path / "pool", workers=2)
    here = retrained_outputs(spec, train, masks, seeds, output, tmp_path / "here", workers=1)
    assert pooled.shape == (2, 3, 4) and not np.array_equal(pooled[0], pooled[1])  # the seeds differ
    np.testing.assert_allclose(pooled, here, rtol=1e-4)
    trained = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert len(trained) == 6
    again = retrained_outputs(spec, train, masks, seeds, output, tmp_path / "here", workers=1)
    assert np.array_equal(again, here) and sorted(p.name for p in (tmp_path / "here").iterdir()) == trained

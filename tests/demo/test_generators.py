"""The demo generator families: deterministic training and sampling, checkpoint round trip, cache."""

import numpy as np
import pytest

from gmv_dagster.demo.diffusion import DiffusionParams
from gmv_dagster.demo.generator import (
    GeneratorSpec,
    TrainParams,
    cached_generator,
    load_generator,
    save_generator,
    train_generator,
)


def _grey(train):
    return [np.asarray(img.mean(axis=2) if img.ndim == 3 else img, dtype=np.uint8) for img in train]


@pytest.mark.parametrize("family", ["vae", "diffusion"])
def test_each_generator_family_trains_samples_deterministically_and_round_trips(tmp_path, known_answer, family):
    train, labels = _grey(known_answer[0]), [str(x) for x in known_answer[1]]
    spec = GeneratorSpec(
        family, TrainParams(epochs=2, snapshots=2), DiffusionParams(steps=6, batch_size=8, sample_steps=3)
    )
    generator = train_generator(spec, train, labels)
    a, la = generator.sample(6, seed=1)
    b, _ = generator.sample(6, seed=1)
    c, _ = generator.sample(6, seed=2)
    assert a.shape == (6, 28, 28) and a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert la == [generator.classes[i % len(generator.classes)] for i in range(6)]
    assert np.array_equal(train_generator(spec, train, labels).sample(6, seed=1)[0], a)  # retraining reproduces
    assert len(generator.snapshots) == (2 if family == "vae" else 0)
    save_generator(generator, tmp_path / "g.pt")
    loaded = load_generator(tmp_path / "g.pt")
    assert loaded.spec == spec and np.array_equal(loaded.sample(6, seed=1)[0], a)
    messages = []
    first, path = cached_generator(spec, train, labels, "key", tmp_path / "ck", log=messages.append)
    second, same = cached_generator(spec, train, labels, "key", tmp_path / "ck", log=messages.append)
    assert path == same and any("reusing" in m for m in messages)
    assert np.array_equal(first.sample(4, 0)[0], second.sample(4, 0)[0])
    with pytest.raises(ValueError, match="family"):
        GeneratorSpec("gan")


def test_the_vae_samples_its_latents_from_each_class_s_fitted_aggregate_posterior(known_answer):
    """With one component per class the prior is the Gaussian of the encoder's means of that class's training
    images (mean exactly, covariance np.cov's biased form plus sklearn's 1e-4 ridge); with none, N(0, I)."""
    import torch
    from torch import nn

    from gmv_dagster.common.tensors import to_tensor_batch
    from gmv_dagster.demo.generator import train_cvae

    train, labels = _grey(known_answer[0]), [str(x) for x in known_answer[1]]
    model, classes = train_cvae(train, labels, TrainParams(epochs=2, prior_components=1))
    y = torch.tensor([classes.index(label) for label in labels])
    x = to_tensor_batch(train, 28, 1).flatten(1)
    with torch.inference_mode():
        mu = model.to_stats(model.encoder(torch.cat([x, nn.functional.one_hot(y, len(classes)).float()], 1)))
    mu = mu[:, : model.latent].double().numpy()
    for c in range(len(classes)):
        own = mu[(y == c).numpy()]
        np.testing.assert_allclose(model.prior_means[c, 0].numpy(), own.mean(0), rtol=1e-5, atol=1e-6)
        cov = np.cov(own.T, bias=True) + 1e-4 * np.eye(model.latent)
        chol = model.prior_chols[c, 0].double()
        np.testing.assert_allclose((chol @ chol.T).numpy(), cov, rtol=1e-4, atol=1e-6)
    z = model.sample_latent(torch.zeros(20000, dtype=torch.int64), torch.Generator().manual_seed(0))
    np.testing.assert_allclose(z.double().mean(0).numpy(), mu[(y == 0).numpy()].mean(0), atol=0.05)
    standard, _ = train_cvae(train, labels, TrainParams(epochs=2, prior_components=0))
    assert torch.equal(
        standard.sample_latent(y[:5], torch.Generator().manual_seed(3)),
        torch.randn(5, standard.latent, generator=torch.Generator().manual_seed(3)),
    )


def test_a_spec_saved_before_the_fitted_prior_keeps_sampling_from_n01_and_a_one_image_class_trains(known_answer):
    import torch

    old = GeneratorSpec().to_dict()
    del old["vae"]["prior_components"]
    assert GeneratorSpec.from_dict(old).vae.prior_components == 0  # not today's default
    from gmv_dagster.demo.generator import train_cvae

    train, labels = _grey(known_answer[0]), [str(x) for x in known_answer[1]]
    lonely = train[:1] + train  # one more class with a single image
    model, classes = train_cvae(lonely, ["lonely"] + labels, TrainParams(epochs=1, prior_components=3))
    c = classes.index("lonely")
    assert model.prior_weights[c].tolist() == [1.0, 0.0, 0.0]
    z = model.sample_latent(torch.full((50,), c), torch.Generator().manual_seed(0))
    assert torch.allclose(z, model.prior_means[c, 0].expand_as(z), atol=0.05)

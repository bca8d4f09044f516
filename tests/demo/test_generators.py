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
    spec = GeneratorSpec(family, TrainParams(epochs=2, snapshots=2), DiffusionParams(steps=6, batch_size=8, sample_steps=3))
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

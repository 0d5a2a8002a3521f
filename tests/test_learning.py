"""It really learns: the conditional DCGAN, trained briefly on the bundled MNIST
sample's ``train`` split, draws digits that a small CNN trained on the ``holdout``
split (real digits the GAN never saw) recognises as the class asked for, far above
the 10% of chance. ``scripts/cgan_accuracy.py`` runs the longer version (1500 steps,
88% on 2 CPU cores); this one takes about a minute and a half."""

import pytest

from gantrain.build import load_generator
from gantrain.data.mnist import mnist_sample
from gantrain.data.spec import to_unit_range
from gantrain.metrics.classifier import accuracy, conditional_accuracy, fit_classifier

from conftest import train

STEPS = 800


@pytest.fixture(scope="module")
def judge():
    holdout, unseen = mnist_sample(split="holdout"), mnist_sample(split="train")
    model = fit_classifier(to_unit_range(holdout.images), holdout.labels, 10, epochs=15)
    assert accuracy(model, to_unit_range(unseen.images), unseen.labels) > 0.9  # a judge worth asking
    return model


def test_conditional_gan_draws_the_asked_for_digit(tmp_path, judge):
    run_dir = tmp_path / "run"
    train(run_dir, ["model=cgan", "data.split=train", "model.generator.width=32", "model.discriminator.width=32",
                    f"trainer.steps={STEPS}", "trainer.progress=false", "trainer.log_every=100",
                    f"trainer.sample_every={STEPS}", f"trainer.checkpoint_every={STEPS}", "device=cpu"])
    G, _ = load_generator(run_dir)
    per_class = conditional_accuracy(G, judge, 10, per_class=50, seed=1)
    assert per_class.mean() > 0.4, per_class  # chance: 0.1
    assert (per_class > 0.1).sum() >= 8, per_class  # not one or two easy digits

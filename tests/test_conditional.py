"""Conditional models: the class asked for is the class G is given, on every net and
for CelebA attributes; a projection discriminator reads the label."""

import pytest
import torch
from conftest import TINY, TINY_MLP, compose_config, events, train
from fixtures import CELEBA_ATTRS, write_celeba

from gantrain.build import build_trainer
from gantrain.data.celeba import celeba
from gantrain.data.mnist import mnist_sample
from gantrain.errors import UserError
from gantrain.nets.dcgan import DCGANDiscriminator
from gantrain.nets.mlp import MLPDiscriminator
from gantrain.trained import load_generator


@pytest.mark.parametrize("base", [TINY, TINY_MLP], ids=["dcgan", "gan"])
def test_grid_row_k_is_generated_from_class_k_code(tmp_path, base):
    overrides = [*base, "model.conditional=true", "trainer.num_samples=30"]
    trainer = build_trainer(compose_config(overrides), tmp_path / "run", overrides)
    G = trainer.model.G
    first = G.net[0]
    inputs = []
    hook = first.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    trainer.log_samples()
    hook.remove()
    codes = inputs[0].flatten(1)[:, G.z_dim :]  # [z, onehot(y)]: the one-hot part
    assert trainer.fixed["y"].tolist() == [k for k in range(10) for _ in range(3)]
    assert torch.equal(codes, torch.nn.functional.one_hot(trainer.fixed["y"], 10).float())
    trainer.logger.close()


def test_sample_for_class_k_differs_from_other_classes_and_matches_g(tmp_path):
    overrides = [*TINY, "model.conditional=true"]
    model = build_trainer(compose_config(overrides), tmp_path / "run", overrides).model
    z = torch.randn(1, model.z_dim).expand(10, -1)
    images = model.sample(z, torch.arange(10))
    model.G.eval()
    assert torch.allclose(images[3:4], model.G(z[:1], torch.tensor([3])))
    assert all(not torch.allclose(images[k], images[j]) for k in range(10) for j in range(k))


@pytest.mark.parametrize(
    "D",
    [
        DCGANDiscriminator(1, 28, 10, width=8, conditioning="projection"),
        MLPDiscriminator(1, 28, 10, hidden=16, conditioning="projection"),
    ],
    ids=["dcgan", "mlp"],
)
def test_projection_discriminator_reads_the_label_through_an_embedding(D):
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    first = D.net[0]
    assert (first.in_channels if hasattr(first, "in_channels") else first.in_features) in (1, 784)
    scores = [D(x, torch.full((4,), k)) for k in range(3)]
    assert not torch.allclose(scores[0], scores[1]) and not torch.allclose(scores[1], scores[2])
    D(x, torch.full((4,), 7)).sum().backward()
    grad = D.projection.embed.weight.grad
    assert grad[7].abs().sum() > 0 and grad[:7].abs().sum() == 0


def test_unknown_conditioning_is_a_user_error():
    with pytest.raises(UserError, match="conditioning"):
        DCGANDiscriminator(1, 28, 10, conditioning="add")


def test_celeba_attributes_become_classes(tmp_path):
    attrs = write_celeba(tmp_path, n=12)
    source = celeba(str(tmp_path), split="all", image_size=16, label_attrs=["Male", "Smiling"])
    assert source.spec.num_classes == 4
    assert source.spec.class_names == ("-Male -Smiling", "-Male +Smiling", "+Male -Smiling", "+Male +Smiling")
    male, smiling = CELEBA_ATTRS.index("Male"), CELEBA_ATTRS.index("Smiling")
    for k in range(12):
        assert source.dataset[k]["label"].item() == 2 * attrs[k, male] + attrs[k, smiling]
    with pytest.raises(UserError, match="Smiles not among the CelebA attributes"):
        celeba(str(tmp_path), label_attrs=["Smiles"])


def test_conditional_celeba_trains_with_one_row_per_attribute_combination(tmp_path):
    write_celeba(tmp_path / "data", n=12)
    run_dir = tmp_path / "run"
    train(
        run_dir,
        [
            *TINY,
            "model=cgan",
            "data=celeba",
            f"data.root={tmp_path / 'data'}",
            "data.num_workers=0",
            "data.image_size=16",
            "data.label_attrs=[Smiling]",
            "trainer.num_samples=8",
            "trainer.steps=2",
        ],
    )
    G, export = load_generator(run_dir)
    assert G.num_classes == 2 and export["step"] == 2
    assert export["data_spec"]["class_names"] == ["-Smiling", "+Smiling"]
    assert "classes/text_summary" in events(run_dir).Tags()["tensors"]
    assert G(torch.randn(2, G.z_dim), torch.tensor([0, 1])).shape == (2, 3, 16, 16)


def test_mnist_sample_splits_are_disjoint_and_balanced():
    train_split, holdout, whole = (mnist_sample(split=s) for s in ("train", "holdout", "all"))
    assert (train_split.spec.size, holdout.spec.size, whole.spec.size) == (4000, 1000, 5000)
    assert torch.bincount(holdout.labels).tolist() == [100] * 10
    both = torch.cat([train_split.images, holdout.images]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(whole.images.flatten(1), dim=0).shape[0]
    with pytest.raises(UserError, match="split"):
        mnist_sample(split="test")

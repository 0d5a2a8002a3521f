"""``gantrain-dissect``: unit interventions through hooks, top-quantile masks, the
ablation ranking and its pictures, the --ablate/--boost mode, and one-line refusals
that leave nothing behind. Runs on the tiny shared DCGAN/cGAN runs (width 8)."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest
import torch
from conftest import events

from gantrain.tools.dissect import main, parse, run_dissect
from gantrain.tools.inputs import seeded_z
from gantrain.tools.run import open_run
from gantrain.tools.units import (
    activations,
    candidate_layers,
    default_layer,
    generate,
    intervene,
    unit_masks,
    unit_thresholds,
)

LAYER = "net.5"  # the middle ReLU of the 28x28 stack: 16 channels at 6x6 with width 8


@pytest.fixture(scope="module")
def dcgan(dcgan_run):
    return open_run(dcgan_run)


def test_candidate_layers_and_default(dcgan):
    layers = candidate_layers(dcgan.G, seeded_z([0], dcgan.z_dim), None, 1)
    assert [layer.name for layer in layers] == [f"net.{k}" for k in range(9)]  # not the 1-channel output
    assert default_layer(layers).name == LAYER and default_layer(layers).shape == (16, 6, 6)


def test_ablating_zeroes_the_channel_and_boosting_multiplies_it(dcgan):
    G, z = dcgan.G, seeded_z(range(4), dcgan.z_dim)
    h, image = activations(G, LAYER, z), generate(G, z)
    unit = int(h.flatten(2).amax(2).mean(0).argmax())  # a unit that is on somewhere
    with intervene(G, LAYER, ablate=[unit]):
        ablated, ablated_image = activations(G, LAYER, z), generate(G, z)
    assert (ablated[:, unit] == 0).all() and h[:, unit].abs().sum() > 0
    others = [c for c in range(h.shape[1]) if c != unit]
    torch.testing.assert_close(ablated[:, others], h[:, others])
    assert not torch.equal(ablated_image, image)
    with intervene(G, LAYER, boost={unit: 3.0}):
        boosted = activations(G, LAYER, z)
    torch.testing.assert_close(boosted[:, unit], 3 * h[:, unit])
    torch.testing.assert_close(generate(G, z), image)  # the hook is gone after the block


def test_masks_cover_the_top_quantile(dcgan):
    z = seeded_z(range(32), dcgan.z_dim)
    h = activations(dcgan.G, LAYER, z)
    thresholds = unit_thresholds(h, 28, 0.9)
    live = [unit for unit in range(h.shape[1]) if thresholds[unit] > 0]
    assert len(live) >= h.shape[1] // 2
    coverage = unit_masks(h, live, 28, thresholds).float().mean(dim=(0, 2, 3))
    # Strictly above the 0.9 quantile: 10% (to one pixel), a little less where bilinear edges repeat values.
    assert (coverage <= 0.1 + 1 / (32 * 28 * 28)).all() and (coverage > 0.07).all()
    assert coverage.mean() == pytest.approx(0.1, abs=0.01)


def read_ranking(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ranking_csv_pictures_and_tensorboard(dcgan_run, capsys):
    output = run_dissect(
        parse(
            [
                str(dcgan_run),
                "--num-samples",
                "12",
                "--top",
                "3",
                "--no-classifier",
                "--name",
                "rank",
                "--batch-size",
                "40",
            ]
        )
    )
    output.close()
    rows = read_ranking(output.path / "ranking.csv")
    assert list(rows[0]) == ["unit", "mean_activation", "output_change", "d_score_change", "class_flip_rate"]
    assert sorted(int(row["unit"]) for row in rows) == list(range(16))
    changes = [float(row["output_change"]) for row in rows]
    assert changes == sorted(changes, reverse=True) and changes[0] > 0
    for row in rows:
        assert all(math.isfinite(float(row[key])) for key in ("mean_activation", "output_change", "d_score_change"))
        assert row["class_flip_rate"] == ""
    summary = json.loads((output.path / "summary.json").read_text())
    assert summary["layer"] == LAYER and summary["shape"] == [16, 6, 6] and summary["discriminator"]
    assert [unit["unit"] for unit in summary["top_units"]] == [int(row["unit"]) for row in rows[:3]]
    tags = events(dcgan_run).Tags()["images"]
    for name in ("unit_maps", "ablations"):
        assert (output.path / f"{name}.png").is_file() and f"dissect/rank/{name}" in tags
    assert "top units by output change" in capsys.readouterr().out


@pytest.mark.parametrize("layer", ["net.2", LAYER, "net.7"])
def test_the_shortcuts_agree_with_the_full_forward(dcgan, monkeypatch, layer):
    """The ranking reuses the layer's activations: it runs only the rest of the Sequential,
    and subtracts a unit's own share from the next convolution's output (it is linear).
    All of G per batch with a per-row hook must give the same numbers."""
    from gantrain.tools import units

    G = copy.deepcopy(dcgan.G)
    for module in G.modules():  # PyTorch's default init: effects far above rounding (DCGAN's N(0, 0.02) is quiet)
        if isinstance(module, torch.nn.ConvTranspose2d):
            module.reset_parameters()
    z, D = seeded_z(range(5), dcgan.z_dim), dcgan.discriminator()

    def effects():
        return units.ablation_effects(G, layer, z, None, D, batch_size=7)

    results = [effects()]
    monkeypatch.setattr(units, "_linear_conv", lambda module: False)
    results.append(effects())
    monkeypatch.setattr(units, "tail_after", lambda *args: None)
    results.append(effects())
    assert results[2].output_change.max() > 1e-3
    for shortcut in results[:2]:
        torch.testing.assert_close(shortcut.output_change, results[2].output_change, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(shortcut.d_score_change, results[2].d_score_change, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_class_flip_rate_with_the_judge(cgan_run, tmp_path, quick_judge):
    """The real judge path (load_or_train_judge, its cache) with a cheaper fit (``quick_judge``)."""
    output = run_dissect(
        parse(
            [
                str(cgan_run),
                "--num-samples",
                "10",
                "--top",
                "2",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--name",
                "judged",
            ]
        )
    )
    output.close()
    assert list((tmp_path / "cache").glob("judge_mnist_sample_*.pt"))
    rates = [float(row["class_flip_rate"]) for row in read_ranking(output.path / "ranking.csv")]
    assert len(rates) == 16 and all(0 <= rate <= 1 for rate in rates)
    assert json.loads((output.path / "summary.json").read_text())["classifier"]


def test_ablate_and_boost_write_before_and_after(cgan_run):
    output = run_dissect(
        parse([str(cgan_run), "--ablate", "0-7", "--boost", "9:4", "--seeds", "0-5", "--class", "3", "--name", "edit"])
    )
    output.close()
    for name in ("before", "after", "before_after"):
        assert (output.path / f"{name}.png").is_file()
    summary = json.loads((output.path / "summary.json").read_text())
    assert summary["ablate"] == list(range(8)) and summary["boost"] == {"9": 4.0} and summary["class"] == 3
    assert summary["mean_output_change"] > 0
    assert not (output.path / "ranking.csv").exists()
    run = open_run(cgan_run)
    z, y = seeded_z(range(6), run.z_dim), torch.full((6,), 3)
    with intervene(run.G, LAYER, ablate=list(range(8)), boost={9: 4.0}):
        after = generate(run.G, z, y)
    assert not torch.allclose(after, generate(run.G, z, y))


@pytest.mark.parametrize(
    "options, message",
    [
        (["--layer", "net.99"], "net.0, net.1"),
        (["--ablate", "3,16"], "unit 16 is out of range: layer net.5 has 16 channels"),
        (["--boost", "40:2"], "unit 40 is out of range"),
        (["--quantile", "1.5"], "--quantile 1.5"),
        (["--class", "10"], "class 10 is out of range"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(cgan_run, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(cgan_run), "--no-classifier", "--name", "bad", *options])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gantrain-dissect: error: ") and message in err
    assert not (cgan_run / "dissect" / "bad").exists()


def test_list_layers_and_an_mlp_generator(dcgan_run, tmp_path, capsys):
    main([str(dcgan_run), "--list-layers"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and lines[5].split()[:3] == ["net.5", "ReLU", "16x6x6"] and "(default)" in lines[5]
    from conftest import TINY_MLP, train

    train(tmp_path / "mlp", [*TINY_MLP, "trainer.steps=2"])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "mlp"), "--list-layers"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a convolutional generator" in err

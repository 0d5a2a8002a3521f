"""The benchmark scripts stay runnable: their reference nets still match gantrain's."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench import assert_same_architecture, plain_nets  # noqa: E402


def test_plain_reference_dcgan_has_gantrains_parameter_counts():
    for width in (8, 32, 64):
        G, D = plain_nets(64, width)
        assert_same_architecture(G, D, 64, width)  # raises if they drifted apart


def test_cache_bench_runs(monkeypatch, capsys):
    import cache_bench

    monkeypatch.setattr(sys, "argv", ["cache_bench.py", "--images", "130", "--workers", "0", "--size", "16"])
    cache_bench.main()
    out = capsys.readouterr().out
    assert "from the cache (memory-mapped)" in out and "DataLoader, 0 workers" in out

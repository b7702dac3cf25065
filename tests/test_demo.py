"""The root option.yml on the real Landsat-8 demo: a short RAMSF run whose loss falls."""

from __future__ import annotations

from engine.options import load_options
from tests.conftest import ROOT, load_script


def test_thirty_steps_on_the_demo_lower_the_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = load_script("train")
    overrides = [
        f"log_root={tmp_path}",
        f"data.root={ROOT / 'datasets' / 'demo'}",
        "train.iterations=30",
        "train.batch_size=8",
        "train.log_every=5",
        "train.optimizer.lr=1e-3",
        "val.every=30",
        "model.width=16",
        "model.guide_width=16",
        "model.mlp_hidden=[32,16]",
    ]
    argv = ["--option_path", str(ROOT / "option.yml"), *[a for o in overrides for a in ("--set", o)]]
    metrics = train.main(argv)
    options = load_options(ROOT / "option.yml")
    (run,) = (tmp_path / options.task / options.name).iterdir()
    losses = [e.value for e in EventAccumulator(str(run)).Reload().Scalars("train/loss")]
    assert len(losses) == 6
    assert max(losses[-2:]) < 0.5 * losses[0]
    assert metrics["step"] == 30 and 0 < metrics["SAM"] < 20

"""Checkpoints: saved atomically (a save cut short leaves the previous one loadable), and
checked against the config before one is loaded."""

import pytest
import torch

from src.training.checkpointing import MODEL_CONFIG_KEY, AtomicCheckpointIO, load_checkpoint
from tests.helpers import TINY


def test_a_save_cut_short_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 4}, path)

    def killed_halfway(obj, file):  # what a kill during the write leaves: half a file
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr("src.training.checkpointing.torch.save", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 8}, path)

    previous = load_checkpoint(path)
    assert previous["global_step"] == 4 and torch.equal(previous["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no half file left


def test_a_checkpoint_from_before_a_knob_existed_still_resumes_at_its_default(compose_cfg):
    """Runs saved before `model.net.rope_base` existed record no such key: they resume under
    the default (what they were trained with) and are refused under any other value."""
    from src.preflight.checks import model_config
    from src.training.checkpointing import CheckpointError, check_same_model

    record = model_config(compose_cfg(*TINY))
    old = {MODEL_CONFIG_KEY: {k: v for k, v in record.items() if k != "model.net.rope_base"}}
    check_same_model(old, record, "old.ckpt")
    with pytest.raises(
        CheckpointError, match=r"model.net.rope_base: checkpoint 10000, this config 500"
    ):
        check_same_model(
            old, model_config(compose_cfg(*TINY, "model.net.rope_base=500")), "old.ckpt"
        )
    with pytest.raises(CheckpointError, match=r"heads: checkpoint \(not set\)"):
        check_same_model(
            {MODEL_CONFIG_KEY: {k: v for k, v in record.items() if k != "heads"}}, record, "x"
        )

"""tasks/asr/librispeech_mini_cpu.yaml as written (8x frontend, CTC weight, SpecAugment, no loader worker,
learning curve, averaged checkpoint) on a tiny LibriSpeech-layout folder: it fits, and the averaged checkpoint
that benchmarks/cpu_recipes.py scores transcribes the held-back speaker's recordings through ``mms2s transcribe``."""

from __future__ import annotations

import json
from pathlib import Path

from asr_fixtures import TONE_TRANSCRIBE_FLAGS, write_librispeech

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import read_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "tasks" / "asr" / "librispeech_mini_cpu.yaml"


def test_recipe_fits_and_its_averaged_checkpoint_transcribes(tmp_path):
    write_librispeech(tmp_path / "data", speakers=("11", "22", "33"), utterances=4)
    runs = tmp_path / "runs"
    assert main(["fit", "--config", str(RECIPE), "--data.init_args.root", str(tmp_path / "data"),
                 "--data.init_args.val_speakers", '["22"]', "--data.init_args.batch_size", "4",
                 "--trainer.max_steps", "4", "--model.init_args.warmup_steps", "1",
                 "--trainer.check_val_every_n_epoch", "1", "--trainer.default_root_dir", str(runs),
                 "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                 "--trainer.enable_progress_bar", "false"]) == 0
    version = runs / "version_0"
    header = read_checkpoint(version / "checkpoints" / "averaged.ckpt").header
    assert header.ctc_weight == 0.4 and len(json.loads((version / "curve.json").read_text())["points"]) == 2
    held_out = sorted((tmp_path / "data" / "22").rglob("*.flac"))
    out = tmp_path / "transcripts"
    assert main(["transcribe", "--checkpoint", str(version / "checkpoints" / "averaged.ckpt"), *map(str, held_out),
                 "--output-dir", str(out), *TONE_TRANSCRIBE_FLAGS]) == 0
    assert sorted(p.stem for p in out.glob("*.txt")) == [p.stem for p in held_out]

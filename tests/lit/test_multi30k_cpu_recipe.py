"""tasks/translation/multi30k_en_de_cpu.yaml as written (joint BPE, one shared embedding table, token-count
batches, no loader worker, learning curve, averaged checkpoint) on a tiny folder in Multi30k's layout: it fits,
and the averaged checkpoint that benchmarks/cpu_recipes.py scores is tested on ``test_2016_flickr``."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import yaml
from translation_fixtures import write_parallel

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import read_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "tasks" / "translation" / "multi30k_en_de_cpu.yaml"
NOUNS = {"dog": "Hund", "man": "Mann", "child": "Kind", "horse": "Pferd"}
VERBS = {"runs": "rennt", "sleeps": "schläft", "jumps": "springt", "waits": "wartet"}
PLACES = {"outside": "draußen", "here": "hier", "there": "dort"}


def write_multi30k(root: Path) -> None:
    """Gzipped ``<split>.en`` / ``<split>.de`` for train (40 pairs), val and test_2016_flickr (4 each)."""
    pairs = [(f"A {n} {v} {p}.", f"Ein {NOUNS[n]} {VERBS[v]} {PLACES[p]}.")
             for n, v, p in itertools.product(NOUNS, VERBS, PLACES)]
    root.mkdir(parents=True)
    for split, chosen in (("train", pairs[:40]), ("val", pairs[40:44]), ("test_2016_flickr", pairs[44:48])):
        write_parallel(root, split, chosen, gz=True)


def test_recipe_fits_and_its_averaged_checkpoint_is_scored_on_test2016(tmp_path):
    config = yaml.safe_load(RECIPE.read_text())
    assert config["data"]["init_args"]["num_workers"] == 0 and config["model"]["init_args"]["shared_embeddings"]
    write_multi30k(tmp_path / "multi30k")
    runs, data = tmp_path / "runs", ["--data.init_args.root", str(tmp_path / "multi30k")]
    assert main(["fit", "--config", str(RECIPE), *data, "--data.init_args.vocab_size", "300",
                 "--trainer.max_steps", "3", "--model.init_args.warmup_steps", "1",
                 "--trainer.check_val_every_n_epoch", "1", "--trainer.default_root_dir", str(runs),
                 "--trainer.enable_progress_bar", "false"]) == 0
    version = runs / "version_0"
    averaged = version / "checkpoints" / "averaged.ckpt"
    header = read_checkpoint(averaged).header
    assert header.model.shared_embeddings and header.source_tokenizer == header.tokenizer  # joint BPE
    assert len(json.loads((version / "curve.json").read_text())["points"]) == 3 and (version / "curve.png").is_file()
    assert main(["test", "--config", str(RECIPE), *data, "--ckpt_path", str(averaged),
                 "--trainer.default_root_dir", str(runs), "--trainer.enable_progress_bar", "false"]) == 0
    with (runs / "version_1" / "metrics.csv").open() as file:
        (row,) = [row for row in csv.DictReader(file) if row.get("test/bleu")]
    assert 0 <= float(row["test/bleu"]) <= 100

"""The repeated n-gram ban that guards captions and translations against loops ("a large red red red ..."):
on by default where the checkpoint's decoding defaults say so, in greedy and beam search with the KV cache,
shown in the model card, switchable from Python and from ``mms2s caption`` / ``mms2s translate``."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import (
    MODEL_PREFIX,
    CheckpointHeader,
    DecodingDefaults,
    Task,
    default_no_repeat_ngram_size,
)
from multimodal_s2s.decoding import DecodingOptions, DecodingOptionsError, decode
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.models import build_model
from multimodal_s2s.pipelines import Captioner, Translator
from multimodal_s2s.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer
from tests.captioning_fixtures import write_image
from tests.checkpoint_helpers import text_header, write_checkpoint

WORDS = WordTokenizer.train(["a large red circle above a small blue square left of green triangles"])
LOOP_WORD = "red"
MAX_LENGTH = 16


def word_header(task: Task, no_repeat_ngram_size: int | None = None) -> CheckpointHeader:
    """``checkpoint_helpers.text_header`` with a word tokenizer (the task's default ban applies)."""
    header = text_header(task)
    model = replace(header.model, vocab_size=WORDS.vocab_size)
    if task == Task.TRANSLATION:
        model = replace(model, encoder_args={**model.encoder_args, "vocab_size": WORDS.vocab_size})
    decoding = DecodingDefaults(beam_size=2, max_length=MAX_LENGTH, no_repeat_ngram_size=no_repeat_ngram_size)
    source = WORDS if task == Task.TRANSLATION else None
    return replace(header, model=model, tokenizer=WORDS, source_tokenizer=source, decoding=decoding)


def looping_model(header: CheckpointHeader) -> torch.nn.Module:
    """The header's model (random weights) whose decoder prefers LOOP_WORD after any prefix: a bias on one
    feature of the final norm, which only LOOP_WORD's (tied) output row reads strongly."""
    torch.manual_seed(0)
    model = build_model(header.model).eval()
    decoder, loop_id = model.decoder, header.tokenizer.encode(LOOP_WORD)[0]
    with torch.no_grad():
        decoder.final_norm.bias[0] += 10.0
        decoder.output.weight[loop_id, 0] += 10.0
    return model


def looping_checkpoint(path, header: CheckpointHeader):
    state = {f"{MODEL_PREFIX}{key}": value for key, value in looping_model(header).state_dict().items()}
    return write_checkpoint(path, header, state)


def longest_run(tokens: list) -> int:
    """The most times one token follows itself back to back."""
    best, run = 0, 0
    for i, token in enumerate(tokens):
        run = run + 1 if i and token == tokens[i - 1] else 1
        best = max(best, run)
    return best


def has_repeated_ngram(tokens: list, n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_looping_model_stops_looping_with_the_ban_in_greedy_and_beam_search(beam_size):
    header = word_header(Task.CAPTIONING)
    model, loop_id = looping_model(header), WORDS.encode(LOOP_WORD)[0]
    images = torch.randn(2, 3, 32, 48)
    unguarded = decode(model, images, DecodingOptions(max_length=MAX_LENGTH, beam_size=beam_size))
    assert all(result.tokens == [loop_id] * MAX_LENGTH for result in unguarded)  # the loop
    for use_cache in (True, False):
        options = DecodingOptions(max_length=MAX_LENGTH, beam_size=beam_size, no_repeat_ngram_size=4,
                                  use_cache=use_cache)
        for result in decode(model, images, options):
            assert not has_repeated_ngram(result.tokens, 4) and longest_run(result.tokens) <= 4
            assert result.tokens.count(loop_id) < len(result.tokens)


def test_the_default_ban_follows_the_task_and_the_output_units():
    bpe = BPETokenizer.train(["der rote Kreis über dem blauen Quadrat"] * 4, vocab_size=300, min_frequency=1)
    assert default_no_repeat_ngram_size(Task.CAPTIONING, WORDS) == 4
    assert default_no_repeat_ngram_size(Task.TRANSLATION, bpe) == 4
    assert default_no_repeat_ngram_size(Task.TRANSLATION, CharTokenizer.train(["1999-03-03"])) == 0  # "-03-03"
    assert default_no_repeat_ngram_size(Task.ASR, WORDS) == 0  # the transcriber's fallback checks loops


def test_the_header_records_the_ban_and_an_older_header_gets_its_tasks_default():
    assert word_header(Task.CAPTIONING).decoding.no_repeat_ngram_size == 4
    for recorded in (0, 3):
        header = CheckpointHeader.from_dict(word_header(Task.CAPTIONING, recorded).to_dict())
        assert header.decoding.no_repeat_ngram_size == recorded
    older = word_header(Task.TRANSLATION).to_dict()
    del older["decoding"]["no_repeat_ngram_size"]
    assert CheckpointHeader.from_dict(older).decoding.no_repeat_ngram_size == 4
    older_asr = text_header(Task.ASR).to_dict()
    del older_asr["decoding"]["no_repeat_ngram_size"]
    assert CheckpointHeader.from_dict(older_asr).decoding.no_repeat_ngram_size == 0


def test_validation_decodes_with_the_recipes_ban_else_the_checkpoints():
    header = word_header(Task.CAPTIONING)
    model_args = {"encoder": header.model.encoder, "decoder": "transformer"}
    module = Seq2SeqModule(**model_args)
    module.use_header(header)
    assert module.decoding.no_repeat_ngram_size == 4
    module = Seq2SeqModule(**model_args, no_repeat_ngram_size=0)
    module.use_header(header)
    assert module.decoding.no_repeat_ngram_size == 0
    with pytest.raises(DecodingOptionsError, match="no_repeat_ngram_size must be an integer >= 0, got -1"):
        Seq2SeqModule(**model_args, no_repeat_ngram_size=-1)


def test_the_captioner_bans_repeats_by_default_shows_it_and_can_turn_it_off(tmp_path):
    checkpoint = looping_checkpoint(tmp_path / "loop.ckpt", word_header(Task.CAPTIONING))
    captioner = Captioner.from_checkpoint(checkpoint, "cpu")
    assert captioner.model_card().decoding == "beam search, 2 beams, no repeated 4-grams"
    image = write_image(tmp_path / "scene.png")
    guarded, looping = captioner([image])[0], captioner([image], no_repeat_ngram_size=0)[0]
    assert looping.text == " ".join([LOOP_WORD] * MAX_LENGTH)
    assert not has_repeated_ngram(guarded.tokens, 4) and longest_run(guarded.text.split()) <= 4
    with pytest.raises(DecodingOptionsError, match="no_repeat_ngram_size must be an integer >= 0"):
        captioner([image], no_repeat_ngram_size=-2)


def test_mms2s_caption_bans_repeats_unless_no_repeat_ngram_is_0(tmp_path, capsys):
    checkpoint = str(looping_checkpoint(tmp_path / "loop.ckpt", word_header(Task.CAPTIONING)))
    image = str(write_image(tmp_path / "scene.png"))
    assert main(["caption", image, "--checkpoint", checkpoint, "--device", "cpu"]) == 0
    guarded = capsys.readouterr().out.strip().split("\t")[1]
    assert main(["caption", image, "--checkpoint", checkpoint, "--device", "cpu", "--no-repeat-ngram", "0"]) == 0
    assert capsys.readouterr().out.strip().split("\t")[1] == " ".join([LOOP_WORD] * MAX_LENGTH)
    assert longest_run(guarded.split()) <= 4 and not has_repeated_ngram(guarded.split(), 4)
    assert main(["caption", image, "--checkpoint", checkpoint, "--no-repeat-ngram", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: no_repeat_ngram_size must be an integer >= 0, got -1"


def test_mms2s_translate_bans_repeats_unless_no_repeat_ngram_is_0(tmp_path, capsys):
    checkpoint = str(looping_checkpoint(tmp_path / "loop.ckpt", word_header(Task.TRANSLATION)))
    lines = tmp_path / "lines.txt"
    lines.write_text("a red circle\n")
    translator = Translator.from_checkpoint(checkpoint, "cpu")
    assert translator.model_card().decoding == "beam search, 2 beams, no repeated 4-grams"
    assert main(["translate", str(lines), "--checkpoint", checkpoint, "--device", "cpu"]) == 0
    guarded = capsys.readouterr().out.strip()
    assert guarded == translator(["a red circle"])[0].text and longest_run(guarded.split()) <= 4
    assert main(["translate", str(lines), "--checkpoint", checkpoint, "--device", "cpu", "--no-repeat-ngram", "0"]) == 0
    assert capsys.readouterr().out.strip() == " ".join([LOOP_WORD] * MAX_LENGTH)


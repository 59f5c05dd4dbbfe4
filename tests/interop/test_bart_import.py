"""BART import: a randomly initialised HF ``BartForConditionalGeneration`` with a byte-level BPE vocabulary trained
here (``bart_fixtures``) becomes a suite checkpoint whose tokens, logits and source ids equal HF's; bad folders
fail in one line with nothing written; the checkpoint works with ``mms2s translate`` and ``Translator``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bart_fixtures import build_bart_folder
from import_fixtures import assert_refused, changed_config, truncated
from marian_fixtures import sentences

from multimodal_s2s.apps.cli import main
from multimodal_s2s.data.text_batches import pad_token_ids
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.interop.bart import import_checkpoint, suite_order
from multimodal_s2s.interop.marian import read_vocab
from multimodal_s2s.interop.writing import read_json
from multimodal_s2s.pipelines import Translator
from multimodal_s2s.tokenizers import TokenizerFormatError, tokenizer_from_dict
from multimodal_s2s.types import EOS_ID

transformers = pytest.importorskip("transformers", reason="HF transformers (the bench extra) is the reference")
transformers.logging.set_verbosity_error()
#: HF's generate warns that no max_length is set: BART's configs leave it to HF's default, as the checkpoint does.
pytestmark = pytest.mark.filterwarnings("ignore:Using the model-agnostic default `max_length`")

#: HF's max_length counts the decoder start token and the forced <s>; the suite's counts generated tokens.
HF_MAX_LENGTH = 24
LINES = sentences(100, seed=7)
#: bart-large-cnn's kind of generation config: beam 4 stopping early, no repeated 3-grams, longer outputs favoured.
GENERATION = {"num_beams": 4, "early_stopping": True, "no_repeat_ngram_size": 3, "length_penalty": 2.0}


class Reference:
    """An HF BART folder, its HF model and tokenizer, and its import (header, model, id mapping)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.hf = transformers.BartForConditionalGeneration.from_pretrained(folder).eval()
        self.hf_tokenizer = transformers.BartTokenizer.from_pretrained(folder)
        self.header, self.model = import_checkpoint(folder)
        config = read_json(folder / "config.json")
        order = suite_order(read_vocab(folder / "vocab.json", config), config, folder)
        self.to_suite = torch.zeros(len(order) - 2, dtype=torch.long)  # (V_bart,) the suite id of each BART id
        for suite_id, bart_id in enumerate(order[2:], start=2):
            self.to_suite[bart_id] = suite_id

    def suite_ids(self, bart_ids: list[int]) -> list[int]:
        return self.to_suite[bart_ids].tolist()

    def hf_tokens(self, lines: list[str], **generate) -> list[list[int]]:
        """HF ``generate``'s output ids per line, without the start token and the forced <s>, cut at EOS, in
        suite ids."""
        batch = self.hf_tokenizer(lines, return_tensors="pt", padding=True)
        with torch.no_grad():
            rows = self.hf.generate(**batch, do_sample=False, **generate).tolist()
        tokens = []
        for row in rows:
            assert row[:2] == [2, 0]  # </s> then the forced <s>
            suite = self.suite_ids(row[2:])
            tokens.append(suite[: suite.index(EOS_ID)] if EOS_ID in suite else suite)
        return tokens

    def suite_inputs(self, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        sources = [self.header.source_tokenizer.encode(line, add_special=True) for line in lines]
        return pad_token_ids(sources), torch.tensor([len(source) for source in sources])

    def suite_tokens(self, lines: list[str], options: DecodingOptions) -> list[list[int]]:
        inputs, lengths = self.suite_inputs(lines)
        return [result.tokens for result in decode(self.model, inputs, options, lengths)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    return Reference(build_bart_folder(tmp_path_factory.mktemp("bart") / "tiny", generation=GENERATION))


def test_source_ids_equal_bart_tokenizer(reference):
    for line in LINES:
        hf_ids = reference.hf_tokenizer(line)["input_ids"]
        assert reference.header.source_tokenizer.encode(line, add_special=True) == reference.suite_ids(hf_ids), line


@pytest.mark.parametrize("beams", [1, 4])
def test_tokens_equal_hf_generate(reference, beams):
    """Greedy and beam 4 at HF's defaults (length_penalty 1.0, early_stopping False, no n-gram ban, <s> forced
    first, EOS forced at max_length): the suite's decoding equals ``generate`` on all 100 sentences."""
    expected = reference.hf_tokens(
        LINES, num_beams=beams, max_length=HF_MAX_LENGTH, early_stopping=False, no_repeat_ngram_size=0,
        length_penalty=1.0,
    )
    options = DecodingOptions(
        beam_size=beams, max_length=HF_MAX_LENGTH - 2, length_penalty=1.0, end_at_max_length=True, length_offset=1
    )
    assert reference.suite_tokens(LINES, options) == expected
    lengths = {len(tokens) for tokens in expected}
    assert len(lengths) > 3 and HF_MAX_LENGTH - 3 in lengths  # outputs of many lengths, some cut by max_length


def test_tokens_equal_hf_generate_at_the_checkpoints_defaults(reference):
    """The folder's generation config (beam 4, early stopping, no repeated 3-grams, length penalty 2.0, HF's
    default max_length) as the checkpoint's decoding defaults: equal to ``generate`` with no options."""
    defaults = reference.header.decoding
    options = DecodingOptions(
        beam_size=defaults.beam_size, max_length=defaults.max_length, length_penalty=defaults.length_penalty,
        no_repeat_ngram_size=defaults.no_repeat_ngram_size, end_at_max_length=defaults.end_at_max_length,
        **defaults.rules(),
    )
    assert reference.suite_tokens(LINES, options) == reference.hf_tokens(LINES)


def test_logits_equal_hf_under_teacher_forcing(tmp_path):
    """At HF's own initialisation (init_std 0.02, no embedding scale); logits in BART's id order. HF reads
    </s> <s> then the targets; the suite BOS then the targets, with <s> as the decoder's prompt."""
    reference = Reference(build_bart_folder(tmp_path / "small_init", seed=1, init_std=0.02, scale_embedding=False))
    lines = LINES[:16]
    batch = reference.hf_tokenizer(lines, return_tensors="pt", padding=True)
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(3, reference.hf.config.vocab_size, (len(lines), 10), generator=generator)
    start = torch.tensor([[2, 0]]).expand(len(lines), -1)
    with torch.no_grad():
        expected = reference.hf(**batch, decoder_input_ids=torch.cat([start, targets], 1)).logits  # (B, 12, V)
        inputs, lengths = reference.suite_inputs(lines)
        bos = torch.ones(len(lines), 1, dtype=torch.long)
        ours = reference.model(inputs, torch.cat([bos, reference.to_suite[targets]], 1), lengths)  # (B, 11, V + 2)
    assert (ours[..., reference.to_suite] - expected[:, 1:]).abs().max() < 1e-4


def test_checkpoint_header_carries_bart_layout_and_decoding(reference):
    decoding = reference.header.decoding
    assert (decoding.beam_size, decoding.max_length, decoding.length_penalty) == (4, 19, 2.0)
    assert (decoding.no_repeat_ngram_size, decoding.early_stopping, decoding.length_offset) == (3, True, 1)
    assert not decoding.renormalize  # HF's beam scores
    assert decoding.end_at_max_length  # forced_eos_token_id is its eos
    model_config = reference.header.model
    assert model_config.decoder_args["prompt"] == reference.suite_ids([0])  # the forced <s>
    for args in (model_config.encoder_args, model_config.decoder_args):
        assert args["positions"] == "learned" and args["embed_norm"] and args["normalize_before"] is False
    assert reference.header.source_tokenizer == reference.header.tokenizer  # one vocabulary
    model = reference.model  # BART's one table stays one table when the imported model is fine-tuned
    assert model_config.shared_embeddings
    assert model.encoder.embedding.weight is model.decoder.embedding.weight is model.decoder.output.weight


def test_bpe_tokenizer_round_trips_and_refuses_bad_orders(reference):
    tokenizer = reference.header.tokenizer
    rebuilt = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    line = "The cat sees ĝardeno hodiaŭ!"
    assert rebuilt == tokenizer and rebuilt.encode(line) == tokenizer.encode(line)
    assert tokenizer.decode(tokenizer.encode(line, add_special=True)) == line
    bad_orders = {"distinct ids": [None, None, 2, 3, 3], "null for PAD": [1, None, 2, 3], "at least": [None]}
    for problem, order in bad_orders.items():
        with pytest.raises(TokenizerFormatError, match=problem):
            tokenizer_from_dict({**tokenizer.to_dict(), "order": order})


def test_import_then_translate_as_a_user(reference, tmp_path, capsys):
    out, text = tmp_path / "bart.ckpt", tmp_path / "in.txt"
    assert main(["import", "bart", str(reference.folder), str(out)]) == 0
    text.write_text("\n".join(LINES[:8]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(out), str(text), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.splitlines()
    batch = reference.hf_tokenizer(LINES[:8], return_tensors="pt", padding=True)
    with torch.no_grad():
        generated = reference.hf.generate(**batch)  # the folder's generation config
    expected = reference.hf_tokenizer.batch_decode(generated, skip_special_tokens=True)
    assert printed == expected
    translations = Translator.from_checkpoint(out, "cpu")(LINES[:8])
    assert [translation.text for translation in translations] == expected
    assert main(["import", "bart", str(reference.folder), str(out)]) == 2  # exists: refused
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "config.json").unlink(), "config.json: not found"),
        (truncated, "model.safetensors: unreadable or truncated weights"),
        (changed_config(model_type="marian", architectures=["MarianMTModel"]), "model_type is 'marian'"),
        (changed_config(activation_function="gelu_new"), "activation_function must be one of"),
        (changed_config(decoder_attention_heads=5), "not divisible by decoder_attention_heads 5"),
        (changed_config(max_position_embeddings=64), "weights do not fit the config"),
        (lambda folder: (folder / "merges.txt").write_text("#version: 0.2\nzzq xxw\n"), "merges.txt: not BPE merges"),
        (lambda folder: (folder / "merges.txt").unlink(), "merges.txt: not found"),
    ],
    ids=["not-bart", "truncated", "other-architecture", "activation", "heads", "positions", "bad-merges", "no-merges"],
)
def test_bad_folders_fail_in_one_line_and_write_nothing(reference, tmp_path, capsys, damage, message):
    assert_refused("bart", reference.folder, damage, message, tmp_path, capsys)


def _cached_bart_base() -> Path | None:
    """A facebook/bart-base snapshot in the huggingface_hub cache, if one is there with its weights."""
    from huggingface_hub.constants import HF_HUB_CACHE

    snapshots = Path(HF_HUB_CACHE).glob("models--facebook--bart-base/snapshots/*")
    complete = [s for s in sorted(snapshots) if (s / "config.json").is_file() and (s / "merges.txt").is_file()]
    return complete[0] if complete else None


def test_cached_bart_base_equals_hf():
    """The same parity on facebook/bart-base when the user's HF cache holds it (never downloaded)."""
    folder = _cached_bart_base()
    if folder is None:
        pytest.skip("no facebook/bart-base in the huggingface_hub cache (tests never download)")
    reference = Reference(folder)
    lines = LINES[:20]
    for beams in (1, 4):
        generate = dict(num_beams=beams, max_length=64, early_stopping=False, no_repeat_ngram_size=0)
        expected = reference.hf_tokens(lines, length_penalty=1.0, **generate)
        options = DecodingOptions(
            beam_size=beams, max_length=62, length_penalty=1.0, end_at_max_length=True, length_offset=1
        )
        assert reference.suite_tokens(lines, options) == expected

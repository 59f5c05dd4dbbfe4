"""Marian (OPUS-MT) import: a randomly initialised HF ``MarianMTModel`` with SentencePiece models trained here
(``marian_fixtures``) becomes a suite checkpoint whose tokens, logits and ids equal HF's; bad folders fail in
one line with nothing written; the checkpoint works with ``mms2s translate`` and ``Translator``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from import_fixtures import assert_refused, changed_config, truncated
from marian_fixtures import build_marian_folder, sentences

from multimodal_s2s.apps.cli import main
from multimodal_s2s.data.text_batches import pad_token_ids
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.interop.marian import import_checkpoint, read_vocab, suite_order
from multimodal_s2s.interop.writing import read_json
from multimodal_s2s.pipelines import Translator
from multimodal_s2s.tokenizers import TokenizerFormatError, tokenizer_from_dict
from multimodal_s2s.types import EOS_ID

transformers = pytest.importorskip("transformers", reason="HF transformers (the bench extra) is the reference")
transformers.logging.set_verbosity_error()
#: HF's MarianTokenizer asks for sacremoses, which only normalizes punctuation (neither side applies it here).
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")

#: HF's max_length counts the decoder start token; the suite's counts generated tokens.
HF_MAX_LENGTH = 24
LINES = sentences(100, seed=7)


class Reference:
    """An HF Marian folder, its HF model and tokenizer, and its import (header, model, id mapping)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.hf = transformers.MarianMTModel.from_pretrained(folder).eval()
        self.hf_tokenizer = transformers.MarianTokenizer.from_pretrained(folder)
        self.header, self.model = import_checkpoint(folder)
        config = read_json(folder / "config.json")
        self.pad = config["pad_token_id"]
        order = suite_order(read_vocab(folder / "vocab.json", config), config)
        self.to_suite = torch.zeros(len(order) - 1, dtype=torch.long)  # (V_marian,) the suite id of each Marian id
        for suite_id, marian_id in enumerate(order[1:], start=1):
            self.to_suite[marian_id] = suite_id

    def suite_ids(self, marian_ids: list[int]) -> list[int]:
        return self.to_suite[marian_ids].tolist()

    def hf_tokens(self, lines: list[str], **generate) -> list[list[int]]:
        """HF ``generate``'s output ids per line, without the start token, cut at EOS, in suite ids."""
        batch = self.hf_tokenizer(lines, return_tensors="pt", padding=True)
        with torch.no_grad():
            rows = self.hf.generate(**batch, do_sample=False, **generate).tolist()
        tokens = []
        for row in rows:
            suite = self.suite_ids(row[1:])
            tokens.append(suite[: suite.index(EOS_ID)] if EOS_ID in suite else suite)
        return tokens

    def suite_inputs(self, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        sources = [self.header.source_tokenizer.encode(line, add_special=True) for line in lines]
        return pad_token_ids(sources), torch.tensor([len(source) for source in sources])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    return Reference(build_marian_folder(tmp_path_factory.mktemp("marian") / "tiny"))


def test_source_ids_equal_marian_tokenizer(reference):
    for line in LINES:
        hf_ids = reference.hf_tokenizer(line)["input_ids"]
        assert reference.header.source_tokenizer.encode(line, add_special=True) == reference.suite_ids(hf_ids), line


@pytest.mark.parametrize("beams", [1, 4])
def test_tokens_equal_hf_generate(reference, beams):
    """Greedy and beam 4 at HF's defaults (length_penalty 1.0, early_stopping False, EOS forced at
    max_length, pad banned): the suite's decoding equals ``generate`` on all 100 sentences."""
    expected = reference.hf_tokens(LINES, num_beams=beams, max_length=HF_MAX_LENGTH)
    options = DecodingOptions(
        beam_size=beams, max_length=HF_MAX_LENGTH - 1, length_penalty=1.0, end_at_max_length=True
    )
    inputs, lengths = reference.suite_inputs(LINES)
    results = decode(reference.model, inputs, options, lengths)
    equal = sum(result.tokens == tokens for result, tokens in zip(results, expected, strict=True))
    assert equal == len(LINES)
    lengths = {len(tokens) for tokens in expected}
    assert len(lengths) > 3 and HF_MAX_LENGTH - 2 in lengths  # outputs of many lengths, some cut by max_length


def test_logits_equal_hf_under_teacher_forcing(tmp_path):
    """At HF's own initialisation scale (init_std 0.02); logits in Marian's id order."""
    reference = Reference(build_marian_folder(tmp_path / "small_init", seed=1, init_std=0.02))
    lines = LINES[:16]
    batch = reference.hf_tokenizer(lines, return_tensors="pt", padding=True)
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, reference.hf.config.vocab_size - 1, (len(lines), 10), generator=generator)
    decoder_ids = torch.cat([torch.full((len(lines), 1), reference.pad), targets], dim=1)  # (B, 11)
    with torch.no_grad():
        expected = reference.hf(**batch, decoder_input_ids=decoder_ids).logits  # (B, 11, V)
        inputs, lengths = reference.suite_inputs(lines)
        ours = reference.model(inputs, reference.to_suite[decoder_ids], lengths)  # (B, 11, V + 1)
    assert (ours[..., reference.to_suite] - expected).abs().max() < 1e-4


def test_checkpoint_header_carries_marian_decoding(reference):
    decoding = reference.header.decoding
    assert (decoding.beam_size, decoding.max_length, decoding.length_penalty) == (1, 20, 1.0)
    assert decoding.end_at_max_length  # MarianConfig's forced_eos_token_id is its eos
    assert reference.header.model.decoder_args["normalize_before"] is False
    assert reference.header.source_tokenizer != reference.header.tokenizer  # source.spm and target.spm differ
    model = reference.model  # Marian's one table stays one table when the imported model is fine-tuned
    assert reference.header.model.shared_embeddings
    assert model.encoder.embedding.weight is model.decoder.embedding.weight is model.decoder.output.weight


def test_sentencepiece_tokenizer_round_trips_and_refuses_bad_models(reference):
    tokenizer = reference.header.tokenizer
    rebuilt = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert rebuilt == tokenizer and rebuilt.encode(">>deu<< la kato") == tokenizer.encode(">>deu<< la kato")
    assert tokenizer.encode(">>deu<< la kato")[0] == tokenizer.token_to_id.get(">>deu<<", 3)
    with pytest.raises(TokenizerFormatError, match="not a SentencePiece model"):
        tokenizer_from_dict({**tokenizer.to_dict(), "model": "bm90IGEgbW9kZWw="})
    with pytest.raises(TokenizerFormatError, match="base64"):
        tokenizer_from_dict({**tokenizer.to_dict(), "model": "%%%"})


def test_import_then_translate_as_a_user(reference, tmp_path, capsys):
    out, text = tmp_path / "opus.ckpt", tmp_path / "in.txt"
    assert main(["import", "marian", str(reference.folder), str(out)]) == 0
    text.write_text("\n".join(LINES[:5]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(out), str(text), "--beam-size", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.splitlines()
    batch = reference.hf_tokenizer(LINES[:5], return_tensors="pt", padding=True)
    with torch.no_grad():
        generated = reference.hf.generate(**batch, num_beams=4)
    expected = reference.hf_tokenizer.batch_decode(generated, skip_special_tokens=True, use_source_tokenizer=False)
    assert printed == expected
    translations = Translator.from_checkpoint(out, "cpu")(LINES[:5], beam_size=4)
    assert [translation.text for translation in translations] == expected
    assert main(["import", "marian", str(reference.folder), str(out)]) == 2  # exists: refused
    assert "--overwrite" in capsys.readouterr().err
    assert main(["import", "marian", str(reference.folder), str(out), "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "config.json").unlink(), "config.json: not found"),
        (truncated, "model.safetensors: unreadable or truncated weights"),
        (changed_config(model_type="bart", architectures=["BartForConditionalGeneration"]), "model_type is 'bart'"),
        (changed_config(activation_function="gelu_fast"), "activation_function must be one of"),
        (changed_config(encoder_attention_heads=5), "not divisible by encoder_attention_heads 5"),
        (lambda folder: (folder / "target.spm").write_bytes(b"not a model"), "target.spm: not a SentencePiece model"),
    ],
    ids=["not-marian", "truncated", "other-architecture", "activation", "heads", "bad-spm"],
)
def test_bad_folders_fail_in_one_line_and_write_nothing(reference, tmp_path, capsys, damage, message):
    assert_refused("marian", reference.folder, damage, message, tmp_path, capsys)


def _cached_opus_mt() -> Path | None:
    """A Helsinki-NLP/opus-mt-* snapshot in the huggingface_hub cache, if one is there."""
    from huggingface_hub.constants import HF_HUB_CACHE

    configs = sorted(Path(HF_HUB_CACHE).glob("models--Helsinki-NLP--opus-mt-*/snapshots/*/config.json"))
    return configs[0].parent if configs else None


def test_cached_opus_mt_equals_hf():
    """The same parity on a real OPUS-MT model when the user's HF cache holds one (never downloaded)."""
    folder = _cached_opus_mt()
    if folder is None:
        pytest.skip("no Helsinki-NLP/opus-mt-* model in the huggingface_hub cache (tests never download)")
    reference = Reference(folder)
    lines = LINES[:20]
    for beams in (1, 4):
        expected = reference.hf_tokens(lines, num_beams=beams, max_length=64)
        options = DecodingOptions(beam_size=beams, max_length=63, length_penalty=1.0, end_at_max_length=True)
        inputs, lengths = reference.suite_inputs(lines)
        results = decode(reference.model, inputs, options, lengths)
        assert [result.tokens for result in results] == expected

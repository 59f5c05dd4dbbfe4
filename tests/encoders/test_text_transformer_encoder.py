"""TextTransformerEncoder: shapes and mask, padding invariance, bad inputs, registry pairs, and a tiny
dates fit through the Lightning module whose checkpoint load_pipeline turns into a Translator."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from encoder_contract import TokenEncoderContract

from multimodal_s2s import create_model
from multimodal_s2s.data.translation import TranslationDataModule
from multimodal_s2s.encoders.text_transformer import TextTransformerEncoder
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.pipelines import Translator, load_pipeline
from multimodal_s2s.registry import IncompatiblePairError, check_pair, encoder_entry, list_encoders
from multimodal_s2s.types import PAD_ID, Emits, Modality

VOCAB = 50
SIZES = ("tiny", "small", "base")
RECIPES = Path(__file__).resolve().parents[2] / "tasks" / "translation"


def _encoder(**overrides) -> TextTransformerEncoder:
    torch.manual_seed(0)
    return encoder_entry("text_transformer_tiny").factory(vocab_size=VOCAB, **overrides).eval()


def test_registered_sizes_and_pairs():
    names = {f"text_transformer_{size}" for size in SIZES}
    assert names <= set(list_encoders(Modality.TEXT))
    base = encoder_entry("text_transformer_base").factory(vocab_size=VOCAB, num_layers=2)
    assert base.info.out_dim == 512 and len(base.layers.layers) == 2 and base.layers.layers[0].norm_first
    for decoder in ("transformer", "transformer_tiny", "rnn_attention", "rnn"):
        check_pair("text_transformer_small", decoder)
    with pytest.raises(IncompatiblePairError, match="text_transformer_small"):
        check_pair("text_transformer_small", "unet")


class TestTextTransformerEncoderContract(TokenEncoderContract):
    VOCAB = VOCAB
    ENCODERS = {"tiny": ("text_transformer_tiny", {"vocab_size": VOCAB, "max_length": 12})}

    def bad_inputs(self, name, args):
        return [
            (torch.tensor([[1, VOCAB]]), None, "token ids must be in 0..49"),
            (torch.tensor([[1, 2]]), torch.tensor([3]), "exceed the padded length 2"),
            (torch.tensor([[1, 2]]), torch.tensor([0]), "length zero"),
            (torch.ones(1, 13, dtype=torch.long), None, "13 tokens is longer than the encoder's max_length 12"),
        ]


def test_shapes_and_mask():
    encoder = _encoder()
    out = encoder.encode_sequence(torch.randint(4, VOCAB, (3, 7)), torch.tensor([7, 3, 1]))
    assert encoder.info.modality == Modality.TEXT and encoder.info.emits == {Emits.SEQUENCE}
    assert out.memory.shape == (3, 7, 64) and out.final_state is None
    assert out.memory[1, 3:].abs().max() == 0 and out.memory[1, :3].abs().min() > 0


def test_padded_batch_of_three_equals_each_sentence_alone():
    encoder = _encoder()
    lengths = torch.tensor([5, 9, 2])
    sentences = [torch.randint(4, VOCAB, (1, int(n))) for n in lengths]
    batch = torch.full((3, 9), PAD_ID)
    for row, sentence in enumerate(sentences):
        batch[row, : sentence.shape[1]] = sentence
    with torch.no_grad():
        batched = encoder.encode_sequence(batch, lengths).memory
        for row, sentence in enumerate(sentences):
            alone = encoder.encode_sequence(sentence).memory
            torch.testing.assert_close(batched[row : row + 1, : sentence.shape[1]], alone, atol=1e-5, rtol=1e-4)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        TextTransformerEncoder(VOCAB, d_model=64, num_heads=3)


def test_tiny_dates_fit_round_trips_through_the_translator(tmp_path):
    torch.manual_seed(0)
    module = Seq2SeqModule(
        encoder="text_transformer_tiny", decoder="transformer", encoder_args={"d_model": 32, "ff_dim": 64},
        decoder_args={"d_model": 32, "num_layers": 1, "num_heads": 4, "ff_dim": 64}, lr=0.01, warmup_steps=5,
        label_smoothing=0.0, metrics=["exact_match"], beam_size=1, max_length=12,
    )
    data = TranslationDataModule(format="dates", dates_train_size=30 * 32, dates_val_size=32, batch_size=32)
    trainer = L.Trainer(
        max_steps=30, limit_val_batches=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    uniform = math.log(data.tokenizer.vocab_size)  # the loss of a model that has learned nothing
    assert trainer.callback_metrics["val/loss"] < uniform - 0.3
    checkpoint = tmp_path / "dates.ckpt"
    trainer.save_checkpoint(checkpoint)
    translator = load_pipeline(checkpoint, device="cpu")
    assert isinstance(translator, Translator)
    assert translator.header.model.encoder_args["vocab_size"] == data.source_tokenizer.vocab_size
    for name, tensor in module.model.state_dict().items():
        torch.testing.assert_close(translator.model.state_dict()[name], tensor, msg=name)
    lines = ["3/21/1999", "the fifth of May, eighteen oh seven", "in 1807"]
    batched = [t.text for t in translator(lines, batch_size=3)]
    assert batched == [translator([line])[0].text for line in lines]


@pytest.mark.parametrize("recipe", ["dates_transformer.yaml", "multi30k_en_de_transformer.yaml"])
def test_transformer_recipes_build_and_run_their_model(recipe):
    config = yaml.safe_load((RECIPES / recipe).read_text())["model"]["init_args"]
    encoder_args = {**config["encoder_args"], "vocab_size": VOCAB}
    model = create_model(config["encoder"], config["decoder"], encoder_args, config["decoder_args"], vocab_size=30)
    logits = model(torch.randint(4, VOCAB, (2, 9)), torch.randint(4, 30, (2, 5)), torch.tensor([9, 6]))
    assert logits.shape == (2, 5, 30) and model.encoder.info.out_dim == config["decoder_args"]["d_model"]

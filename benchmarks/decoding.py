"""Decoding speed: our greedy and beam-4 search, with and without the KV cache, side by side in one
run with HF transformers' generate() on a random-weight BART decoder of the same shapes.

Both decode from the same precomputed encoder memory (batch 8, 64 rows, d=512) with a 6-layer,
d=512, 8-head, ff 2048 decoder and exactly 64 new tokens (EOS held back by a minimum length in
both), so the figures compare decoder and search alone. Writes JSON with tokens/s for each setting
and the ratios that the targets are about (cache vs recompute, ours vs HF).

    .venv/bin/python benchmarks/decoding.py [--out benchmarks/results/decoding.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from multimodal_s2s import create_model
from multimodal_s2s.decoding import DecodingOptions, decode_encoded
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID, SequenceOutput

BATCH, MEMORY_ROWS, NEW_TOKENS, VOCAB = 8, 64, 64, 1000
D_MODEL, LAYERS, HEADS, FF_DIM = 512, 6, 8, 2048
SETTINGS = [(1, True), (1, False), (4, True), (4, False)]  # (beam size, use cache)


def our_model() -> torch.nn.Module:
    decoder_args = {"d_model": D_MODEL, "num_layers": LAYERS, "num_heads": HEADS, "ff_dim": FF_DIM, "dropout": 0.0}
    # The encoder is unused (decoding starts from the memory); any one with out_dim 512 serves.
    model = create_model("cnn_tiny", "transformer", decoder_args=decoder_args, vocab_size=VOCAB)
    assert model.encoder.info.out_dim == D_MODEL
    return model.eval()


def hf_model() -> torch.nn.Module:
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=VOCAB,
        d_model=D_MODEL,
        decoder_layers=LAYERS,
        decoder_attention_heads=HEADS,
        decoder_ffn_dim=FF_DIM,
        encoder_layers=1,
        encoder_attention_heads=HEADS,
        encoder_ffn_dim=FF_DIM,
        max_position_embeddings=NEW_TOKENS + 2,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=BOS_ID,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        scale_embedding=True,
    )
    return BartForConditionalGeneration(config).eval()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def wall_time(fn) -> float:
    """Seconds one call of ``fn()`` takes (waiting for the GPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_side_by_side(ours, theirs, repeats: int) -> tuple[float, float]:
    """Median wall times of ``ours()`` and ``theirs()``, run alternately (after one warm-up each)
    so that both see the same machine load."""
    ours(), theirs()
    pairs = [(wall_time(ours), wall_time(theirs)) for _ in range(repeats)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def run(repeats: int, device: torch.device) -> dict:
    from transformers.modeling_outputs import BaseModelOutput

    memory = torch.randn(BATCH, MEMORY_ROWS, D_MODEL, device=device)
    mask = torch.ones(BATCH, MEMORY_ROWS, dtype=torch.bool, device=device)
    mask[1::2, MEMORY_ROWS // 2 :] = False  # half the examples padded
    ours, hf = our_model().to(device), hf_model().to(device)
    results = {}
    for beam, cache in SETTINGS:
        options = DecodingOptions(max_length=NEW_TOKENS, min_length=NEW_TOKENS, beam_size=beam, use_cache=cache)

        def our_decode(options=options):
            decode_encoded(ours, SequenceOutput(memory, mask), options)

        def hf_generate(beam=beam, cache=cache):
            with torch.no_grad():
                hf.generate(
                    encoder_outputs=BaseModelOutput(last_hidden_state=memory),
                    attention_mask=mask.long(),
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS,
                    num_beams=beam,
                    do_sample=False,
                    use_cache=cache,
                    length_penalty=1.0,
                )

        seconds_ours, seconds_hf = timed_side_by_side(our_decode, hf_generate, repeats)
        name = f"{'greedy' if beam == 1 else f'beam{beam}'}_{'cache' if cache else 'no_cache'}"
        results[name] = {
            "ours_tokens_per_s": BATCH * NEW_TOKENS / seconds_ours,
            "hf_tokens_per_s": BATCH * NEW_TOKENS / seconds_hf,
            "ours_over_hf": seconds_hf / seconds_ours,
        }
        print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decoding.json"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = run(args.repeats, device)
    ratios = {
        f"{search}_cache_speedup": results[f"{search}_cache"]["ours_tokens_per_s"]
        / results[f"{search}_no_cache"]["ours_tokens_per_s"]
        for search in ("greedy", "beam4")
    }
    report = {
        "benchmark": "decoding",
        "shapes": {
            "batch": BATCH,
            "memory_rows": MEMORY_ROWS,
            "new_tokens": NEW_TOKENS,
            "vocab": VOCAB,
            "d_model": D_MODEL,
            "layers": LAYERS,
            "heads": HEADS,
            "ff_dim": FF_DIM,
        },
        "device": device_name(device),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "results": results,
        "ratios": ratios,
        "targets": {"cache_speedup_at_least": 3.0, "beam4_ours_over_hf_at_least": 1.0},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(ratios, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The special token ids and names shared by every tokenizer and every text decoder (no torch: the ONNX
runtime and the tokenizers read them without it; ``types`` offers them too)."""

#: Special token ids shared by every tokenizer and every text decoder.
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")

"""Shared building blocks: masks, positional encodings, attention, pooling."""

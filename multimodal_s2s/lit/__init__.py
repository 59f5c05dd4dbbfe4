"""LightningModules: Seq2SeqModule for text out, SegmentationModule for dense out."""

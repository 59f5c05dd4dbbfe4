"""Weights and models of other libraries, read into the suite's encoders and decoders."""

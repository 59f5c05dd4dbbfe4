"""Weights in and out: importers that turn other libraries' checkpoints into suite checkpoints."""

"""Weights and models of other libraries in: timm / torchvision encoders by name, and importers that turn
other libraries' checkpoints (Marian) into suite checkpoints."""

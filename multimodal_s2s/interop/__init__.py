"""Models of other libraries in: importers that turn their checkpoints (Marian) into suite checkpoints.
(Encoder weights by name, timm and torchvision, are read by the encoders themselves: encoders/pretrained.py.)"""

"""The preprocessing floor, shared by training (``data/``) and inference (``pipelines/``, the apps):
audio loading and features (``audio``), image loading (``images``), the caption and segmentation
transforms, token ids and padding (``tokens``), and input files (``files``: suffix tables, folders,
text lines). Nothing here imports Lightning or the training code."""

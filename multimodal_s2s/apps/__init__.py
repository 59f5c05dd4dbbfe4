"""Command-line apps: training, captioning, transcription, segmentation, translation, export, demo."""

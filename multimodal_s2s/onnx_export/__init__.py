"""ONNX export of text-out checkpoints (``text.export_text``) from PyTorch graphs of the model (``graphs``);
the folder it writes is run by ``onnx_runtime``."""

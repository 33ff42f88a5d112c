"""Ways out of dtnn: the PyTorch twin (``dtnn.export.torch_twin``) and ONNX export
(``dtnn.export.onnx``). Nothing here is imported eagerly: torch and onnx load only when
their module is imported."""

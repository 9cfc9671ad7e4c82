"""Export: a trained model as ONNX or TorchScript, with its preprocessing and thresholds in a
JSON beside it, verified on export against the PyTorch model on the run's own images.

- `model_export`: `export_model(run, out, format)` and its report.

Layering: export imports models, training.setup (the run's data, to verify on), data, config
and atomic_files; only cli imports it. ONNX needs the `export` extra (onnx, onnxscript,
onnxruntime).
"""

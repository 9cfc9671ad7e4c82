"""Export: a trained model as ONNX or TorchScript, with its preprocessing and thresholds in a
JSON beside it, verified on export against the PyTorch model on the run's own images.

- `model_export`: `export_model(run, out, format)` and its report.
- `serving_engine`: `load_serving_recognizer`, a run served by onnxruntime through its
  export (made on first use, verified, cached by the weights' SHA-256), else by PyTorch.

Layering: export imports models, training.setup (the run's data, to verify on), recognition
(the recognisers it loads), data, config and atomic_files; cli and service import it. ONNX
needs the `export` extra (onnx, onnxscript, onnxruntime).
"""

"""Faces: detection, alignment and a pretrained face encoder, offline.

- `dependencies`: the optional libraries (OpenCV, dlib, face_recognition_models: the `faces`
  extra), each import failing with what to install.
- `detection`: OpenCV's Haar cascade and dlib's HOG detector → face boxes, largest first.
- `alignment`: a square crop with a margin, or dlib's 5-point aligned chip.
- `preprocessing`: `FaceStep`, the detection and alignment a data source and a model declare (the
  `face:` option; "preprocessing.face" in model.json), and `face_crops` for one photo.
- `dlib_format`: dlib's network serialisation, read without dlib.
- `face_resnet`: `DlibFaceResNet`, dlib's 128-d face ResNet ported to PyTorch, its weights
  read from dlib's own file (encoder `dlib_face_resnet` in `siamese.models`).

Layering: faces imports errors, atomic_files and cache (where converted weights are
cached) only; data applies the face step to files (`siamese.data.folders.face_crops`), models builds
the encoder, recognition and training read the step from a model or a source. Nothing here
imports torch but `face_resnet`, so image-decoding workers stay light.
"""

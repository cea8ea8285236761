"""kbnn.apps: applications built on the zoo and the converters (floor 5 of docs' layering).

- `kbnn.apps.quickstart`: the pretrained BinaryNet → LCE flatbuffer → interpreter, offline.
- `kbnn.apps.android`: the Android demo's assets (`model.tflite` + `model.json`).
- `kbnn.apps.preprocessing`: the Android demo's digit preprocessing, in numpy.

Nothing is imported here: each application is loaded on first use.
"""

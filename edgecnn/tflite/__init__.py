"""TFLite work: conversion, Metadata, the int8 debugger and the GPU-delegate check.

- :mod:`~edgecnn.tflite.convert`: every converter call (float32, float16, dynamic, int8,
  int16x8), the one place a successor converter replaces ``tf.lite``.
- :mod:`~edgecnn.tflite.metadata`: labels and normalisation inside the ``.tflite``.
- :mod:`~edgecnn.tflite.debugger`: why int8 loses accuracy, layer by layer.
- :mod:`~edgecnn.tflite.gpu_compatibility`: which ops the mobile GPU delegate would refuse.
"""

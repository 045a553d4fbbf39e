"""Inference: Detect Objects, Classify Pixels and Classify Objects with a deep learning package,
streaming the raster in windows (the worker's ``infer`` command)."""

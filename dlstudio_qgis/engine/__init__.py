"""The engine: the heavy work of Deep Learning Studio, run in a separate worker process.

May import numpy, rasterio, shapely, torch and torchvision; never imports qgis or Qt (the QGIS
process has neither torch nor rasterio, and two GDALs in one process do not mix).

It runs as ``python -m dlstudio_qgis.engine <command> [job.json] [options]`` with the Python
of the ``dlstudio/worker_python`` setting, and talks back in JSON lines on stdout (see
:mod:`.protocol`). Importing this package imports nothing heavy: the QGIS side may import
:mod:`dlstudio_qgis.engine.protocol` (standard library only) to read what the worker says.
"""

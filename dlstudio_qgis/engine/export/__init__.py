"""Export Training Data for Deep Learning: chips, labels and a model definition template.

Runs in the worker (numpy, rasterio, shapely; never qgis). The QGIS side writes a job file
(`job.ExportJob`) naming the raster and the samples already filtered and reprojected, and runs
``python -m dlstudio_qgis.engine export job.json``.

- `command`: the CLI entry (HELP, add_arguments, run) and the result line.
- `exporter`: the whole run: checks, plan, pool, metadata, move into place.
- `source`, `samples`: the raster header and the samples, checked before anything is written.
- `plan`: tiling, rotations, chip names and labels (main process, no pixel read).
- `pool`, `worker`: the process pool and what each worker does with a batch of tiles.
- `chips`, `labels`, `stats`: pixels in and out, label files per format, band statistics.
- `metadata`, `staging`: the .emd and stats files; the hidden folder moved into place.
- `reader`: `read_export(folder)` reads an export back (ours or ArcGIS's), for training.
"""

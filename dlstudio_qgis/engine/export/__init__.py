"""Export Training Data for Deep Learning: chips, labels and a model definition template.

Runs in the worker (numpy, rasterio, shapely; never qgis). The QGIS side writes a job file
(`job.ExportJob`) naming the raster and the samples already filtered and reprojected.
"""

"""Docks, map tools and dialogs: thin over the core, Qt through ``qgis.PyQt`` only.

Qt5/Qt6-neutral (fully scoped enums). Long work runs in the engine worker from a QgsTask;
the UI never imports torch, rasterio or shapely.
"""

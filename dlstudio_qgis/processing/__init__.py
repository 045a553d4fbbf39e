"""The Processing provider and its algorithms: thin over the core, one algorithm per file.

Runs in QGIS's Python: QGIS APIs and core/ only (never torch, rasterio or shapely).
"""

from .provider import ALGORITHMS, DlsProvider

__all__ = ["ALGORITHMS", "DlsProvider"]

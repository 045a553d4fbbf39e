"""Accuracy assessment: object detection (matching, AP, mAP), pixel classification (a
confusion matrix streamed window by window) and their HTML reports (the worker's
``accuracy`` command). metrics.py and report.py need numpy at most, so the QGIS side uses
them for object classification."""

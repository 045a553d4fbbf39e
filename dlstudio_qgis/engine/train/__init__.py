"""Train Deep Learning Model: a cancellable worker command that trains from an export folder
and writes a deep learning package (.dlpk). numpy/torch/torchvision only; never qgis."""

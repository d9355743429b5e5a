"""cnnlab: build, inspect, train and explain convolutional neural networks.

The package is layered (dependencies point downwards only)::

    cli            cnnlab train | evaluate | predict | summary | shape | models | viz | export
    train  viz     the loop, checkpoints, metrics; plots and the HTML run report
    data   inspect datasets -> uint8 tensor cache -> batched augmentation; summary/FLOPs/RF
    models         registry + one file per family, built from layers
    layers         every convolution/pooling/normalization variant and block; shape formulas
    reference      NumPy-only from-scratch ops: the math, and the tests' oracle

Sub-packages are imported on demand (``import cnnlab.layers``) so that ``import cnnlab`` stays
cheap.
"""

__version__ = "0.1.0"

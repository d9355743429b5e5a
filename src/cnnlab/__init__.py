"""cnnlab: build, inspect, train and explain convolutional neural networks.

The package is layered (dependencies point downwards only; ``tests/test_layers_imports.py``
checks it)::

    cli            cnnlab train | evaluate | predict | summary | shape | models | viz | export
    train          the loop, checkpoints, metrics (writes the report through viz when installed)
    viz            plots and the HTML run report
    evaluation  prediction   a run scored on a split (metrics, per class, confusion); top-k
                   classes of image files (side by side: neither imports the other)
    export  tta  calibration   shipping a model (ONNX, TorchScript) and its inference backends;
                   test-time augmentation views; ECE and reliability bins (side by side)
    run            the run directory: paths, config/metadata reader, model and data reloading,
                   eval/<split>/ files, the one batched scoring path
    transfer       pretrained weights (what a source expects, loading, freezing)
    data   inspect datasets -> uint8 tensor cache -> batched augmentation, image decoding;
                   summary/FLOPs/RF
    checkpoint     safetensors weights + JSON metadata, written atomically
    models         registry + one file per family, built from layers
    layers         every convolution/pooling/normalization variant and block; shape formulas
    reference      NumPy-only from-scratch ops: the math, and the tests' oracle

A package imports only packages below it (``_validate``, ``_deps`` and ``_yaml`` are helpers
for all), and never another package's private ``_module``.

Sub-packages are imported on demand (``import cnnlab.layers``) so that ``import cnnlab`` stays
cheap.
"""

__version__ = "0.1.0"

# ``cnnlab.evaluate(...)`` and ``cnnlab.predict(...)``: the Python API of the two commands,
# imported on first use so that ``import cnnlab`` stays cheap. Their modules have other names
# (cnnlab.prediction, cnnlab.evaluation) so that importing one never shadows a function.
_LAZY_FUNCTIONS = {
    "evaluate": ("cnnlab.evaluation", "evaluate"),
    "predict": ("cnnlab.prediction", "predict"),
}


def __getattr__(name: str):
    if name in _LAZY_FUNCTIONS:
        import importlib

        module_name, attr = _LAZY_FUNCTIONS[name]
        function = getattr(importlib.import_module(module_name), attr)
        globals()[name] = function  # later look-ups skip __getattr__
        return function
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")

"""The top-level Python API stays callable whichever modules were imported first."""

import importlib
import inspect


def test_evaluate_and_predict_are_functions_after_their_modules_are_imported():
    import cnnlab
    import cnnlab.prediction
    import cnnlab.train
    import cnnlab.train.evaluation

    importlib.reload(cnnlab.train)  # a fresh package namespace with the submodule already loaded
    assert inspect.isfunction(cnnlab.predict)
    assert inspect.isfunction(cnnlab.evaluate)
    from cnnlab.train import evaluate, fit

    assert inspect.isfunction(evaluate) and inspect.isfunction(fit)
    assert cnnlab.evaluate is evaluate

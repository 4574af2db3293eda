"""A version's fast predictor forms: built with well-kept converters, verified against the
model, timed, and the fastest chosen per workload (one row, a large batch).

- ``converters``: which forms apply to a model and building each (compiled linear, ONNX
  Runtime through skl2onnx / onnxmltools, Treelite);
- ``sample`` and ``verification``: the rows a form must reproduce the model on, and how close;
- ``timing``: one row and batch, within a bounded time;
- ``build``: trying every candidate and choosing; ``record``: what was tried and chosen;
- ``runtimes``: running a stored form with its own runtime only.
"""

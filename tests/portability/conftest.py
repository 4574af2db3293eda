"""Fixtures of tests/portability: stores a real MLflow 3 wrote (mlflow_stores.py)."""

from __future__ import annotations

from tests.portability.mlflow_stores import mlflow_python, mlflow_stores

__all__ = ["mlflow_python", "mlflow_stores"]

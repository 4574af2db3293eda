"""The bundled demo: a model's life on scikit-learn's breast-cancer dataset."""

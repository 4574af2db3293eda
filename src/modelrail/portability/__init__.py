"""Reproducibility and portability: reproduce a version, carry versions between stores,
bring MLflow history in, and model cards generated from the record."""

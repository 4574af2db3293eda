"""Watching deployed models: reference profiles, prediction logs, labels, drift and live metrics."""

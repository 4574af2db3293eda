"""Turning a verified model version into the fastest correct predictor, shared by the
real-time server and batch scoring."""

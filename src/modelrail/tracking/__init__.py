"""Runs and the fingerprints of everything that went into them."""

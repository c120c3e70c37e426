"""Trained policies shipped with the package, and the row layout they were trained on."""

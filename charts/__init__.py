"""Figures drawn from comparison results (``python -m charts RUN_DIR``); the images live here too."""

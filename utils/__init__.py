"""Shared infrastructure: registries, user-facing errors, options, checkpoints, logging."""

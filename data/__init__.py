"""Data: HDF5 datasets of the public layouts, degradation protocols, demo preparation."""

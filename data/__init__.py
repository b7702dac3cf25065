"""Data: HDF5 datasets of the public layouts, augmentation, scene preparation and the demo."""

"""Signal-processing protocols shared by the data, the metrics and the classical methods.

MATLAB-compatible resizing and the 23-tap interpolator (:mod:`protocols.resize`), the sensors'
MTF-matched filters (:mod:`protocols.mtf`) and Wald's degradation protocol
(:mod:`protocols.degrade`). They import only :mod:`utils` of this project.
"""

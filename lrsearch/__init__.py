"""lrsearch: an Optuna study of learning-rate schedules over NiftyNet segmentation training.

This module stays import-light (no TensorFlow, no Optuna) and Python 3.7-compatible: the
TF 1.15 runtime imports the package to reach the schedules and the NiftyNet application.
"""

__version__ = "0.1.0"

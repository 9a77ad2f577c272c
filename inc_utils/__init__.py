"""inc_utils: measure Intermediate Neural Collapse layer by layer.

The companion package to Lindegaard (2023), "Feature Learning in the Neural Collapse
regime of Deep Classifiers". See README.md for the layout and conventions.
"""
__version__ = "0.1.0"

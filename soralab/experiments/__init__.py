"""Experiments: GLUE data, models, methods (SoRA and its baselines), training with transformers' Trainer, recipes,
sparsity schedules, sweeps, costs and results. Built on the core (``soralab.config`` ... ``soralab.export``); nothing
in the core imports from here.
"""

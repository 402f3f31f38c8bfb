"""Teaching: run profiles for the notebooks, the notebook suite runner, plots, and the planted low-rank task.
Built on the core and on ``soralab.experiments``; nothing below imports from here.
"""

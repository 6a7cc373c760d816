"""The judge layer: metrics in each target's own terms, their uncertainty (a group
bootstrap), plots, the label studies and the report writer. Never imports the models (it scores their predictions) or the top.
"""

from .._lazy import attach

__getattr__, __all__ = attach(__name__, ("labels", "metrics", "plots", "report", "uncertainty"))

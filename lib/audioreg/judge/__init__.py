"""The judge layer: metrics in each target's own terms, their uncertainty (a group
bootstrap), plots, the label studies, the report writer and the cross-run
leaderboard. Never imports the models (it scores their predictions) or the top.
"""

from .._lazy import attach

__getattr__, __all__ = attach(__name__, ("labels", "leaderboard", "metrics", "plots", "report", "uncertainty"))

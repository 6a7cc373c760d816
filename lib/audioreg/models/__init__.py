"""The models layer: the random forest on per-song statistics, the GRU, its training.

Imports the data and features layers at most; never judge or the top.
"""

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    ("forest", "gru", "train"),
    {"aggregate": "forest", "aggregate_names": "forest", "fit_rf_search": "forest",
     "standardized_mse_score": "forest", "DEFAULT_RF_PARAM_DISTRIBUTIONS": "forest",
     "GRURegressor": "gru", "train_gru": "train", "predict_gru": "train", "TrainResult": "train",
     "CheckpointError": "train", "load_checkpoint": "train"},
)

"""The models layer: the random forest on per-song statistics and the GRU, each a
scikit-learn-style estimator (:class:`ForestRegressor`, :class:`GRURegressor`).

Modules: ``forest`` (aggregation, the forest search), ``inputs`` (a split table's frame
features and track-level inputs, as the models read them), ``network`` (the torch GRU and its
config), ``train`` (the training loop, checkpoints, prediction), ``gru`` (the estimator).
Imports the data and features layers at most; never judge or the top.
"""

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    ("forest", "gru", "inputs", "network", "train"),
    {"aggregate": "forest", "aggregate_names": "forest", "fit_rf_search": "forest", "ForestRegressor": "forest",
     "standardized_mse_score": "forest", "DEFAULT_RF_PARAM_DISTRIBUTIONS": "forest",
     "GRURegressor": "gru", "GRUNet": "network", "GRUConfig": "network", "TrainConfig": "train",
     "train_gru": "train", "predict_gru": "train", "TrainResult": "train",
     "CheckpointError": "train", "load_checkpoint": "train"},
)

"""Failure prediction: time to breach of series that creep towards a known limit."""

from aurora.predict.baseline import LIMITS, LimitedSeries, PredictConfig, limit_columns, predict_breaches, theil_sen

__all__ = ["LIMITS", "LimitedSeries", "PredictConfig", "limit_columns", "predict_breaches", "theil_sen"]

"""Failure prediction: time to breach of series that creep towards a known limit.

``trend`` is the forecaster (``forecast`` over ``blocks.Blocks``, ``records`` for the API, the rules in its
docstring); ``blocks`` builds its input (``blocks_from_samples`` for bench and replay, ``BlockBuffer``
for a live stage); ``season`` estimates daily profiles; ``limits`` says which series have a limit;
``baseline`` is the simple Theil-Sen predictor the bench compares against.
"""

from aurora.predict.baseline import PredictConfig, theil_sen
from aurora.predict.blocks import BlockBuffer, Blocks, blocks_from_samples
from aurora.predict.limits import LIMITS, LimitedSeries, limit_columns
from aurora.predict.season import daily_profile, profile_at
from aurora.predict.trend import REASONS, STATES, Forecast, TrendConfig, forecast, predict_breaches, records

__all__ = ["LIMITS", "REASONS", "STATES", "BlockBuffer", "Blocks", "Forecast", "LimitedSeries", "PredictConfig",
           "TrendConfig", "blocks_from_samples", "daily_profile", "forecast", "limit_columns", "predict_breaches",
           "profile_at", "records", "theil_sen"]

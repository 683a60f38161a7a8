"""Learned risk models: P(a limited series breaches its limit within 4 h), trained on simulator histories.

One job per module:

* ``features``: causal features of every limited series at an evaluation, from the 1-min blocks
  (headroom, slopes and times to the limit over several windows, volatility, drops, an anomaly z,
  breakout), the service's change events and the trend model's own P(breach within 4 h); ``stream``
  for a whole run, ``sequences`` for the CfC;
* ``dataset``: simulator runs set up as the bench sets them up, labels (breach within 4 h), the
  training seeds (all below 1000) and the sampling of the fitted (series, evaluation) pairs;
* ``models``: logistic regression and gradient boosting (scikit-learn), the records and explanations
  every learned model shares;
* ``cfc``: the liquid network (``ncps`` CfC on CPU torch; optional extra ``lnn``);
* ``threshold``: from probabilities to prediction episodes, and the threshold tuned on held-out seeds;
* ``train``: fit and tune the requested models, deterministically.

``aurora bench predict --models trend,baseline,logreg,gbm,cfc`` trains and compares them with the trend
model. They give a probability, not an ETA: the trend forecaster stays the default (see the README).
"""

from aurora.predict.learned.dataset import HORIZON_S, TrainConfig
from aurora.predict.learned.features import FEATURES, FeatureConfig, compute
from aurora.predict.learned.train import LEARNED, Trained, train

__all__ = ["FEATURES", "HORIZON_S", "LEARNED", "FeatureConfig", "TrainConfig", "Trained", "compute", "train"]

"""Anomaly detection: pure, vectorised, causal detectors over series slots."""

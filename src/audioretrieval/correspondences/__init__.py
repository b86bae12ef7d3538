"""Estimated audio-caption correspondences: ensembles of stage-1 models, the caption estimator,
their quality against the demo's truth."""

CAPTIONS = "captions"  # the ensemble member that names the caption estimator (correspondences.ensembles)

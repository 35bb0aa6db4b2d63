"""A recipe becoming a shipped model file: data, training, evaluation and calibration, ensembles, the card."""

"""An upload becoming a verdict: the detector, its windows and heatmaps, video, evidence lines, batch scoring."""

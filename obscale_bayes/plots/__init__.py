"""obscale_bayes.plots."""

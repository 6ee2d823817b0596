"""obscale_bayes.forecast."""

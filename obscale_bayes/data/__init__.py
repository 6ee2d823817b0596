"""obscale_bayes.data."""

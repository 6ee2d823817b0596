"""obscale_bayes.model."""

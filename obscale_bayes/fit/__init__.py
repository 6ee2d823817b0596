"""obscale_bayes.fit."""

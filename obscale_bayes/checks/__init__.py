"""obscale_bayes.checks."""

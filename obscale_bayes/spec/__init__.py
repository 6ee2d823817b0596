"""obscale_bayes.spec."""

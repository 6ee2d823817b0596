"""obscale_bayes.evaluation."""

"""obscale_bayes.cli."""

"""``python -m obscale_bayes.cli``: the command line."""

from obscale_bayes.cli.main import main

raise SystemExit(main())

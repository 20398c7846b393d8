"""One module per `runeworker` sub-command; `cli.py` parses argv and calls them."""

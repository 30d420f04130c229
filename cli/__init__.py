"""The operator command line: `python -m cli --help`."""

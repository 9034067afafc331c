"""The ``quantdesk`` command line: thin, turns domain errors into one line and exit code 2."""

__all__: list[str] = []

"""The ``modelrail`` command: thin commands over the library."""

"""The library against a team server (``modelrail server``) instead of a local store."""

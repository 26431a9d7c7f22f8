"""The command line: ``flask --app userhub …`` commands, the settings check, ``userhub serve``."""

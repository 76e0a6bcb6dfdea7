"""ivrkit: call flows in YAML for Asterisk, run by a FastAGI server, compiled to dialplan, tested without a PBX."""

__version__ = "0.1.0"

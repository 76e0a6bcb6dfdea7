"""Prompts: catalog, settings, manifest, audio processing, build, synth, checks, deploy."""

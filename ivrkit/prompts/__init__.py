"""Prompts: the catalog of what each prompt says, per language, and its audio."""

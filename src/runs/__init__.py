"""Run folders: how they are named and claimed, found again, and their records read."""

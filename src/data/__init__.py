"""Toy next-token tasks, generated a whole batch at a time."""

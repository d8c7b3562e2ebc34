"""Thespian actors: thin shells that feed messages and timers to the pure rules beside them."""

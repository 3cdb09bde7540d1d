"""Pacman repositories: package reading, desc/files formats, db archives, on-disk store."""

"""Nearest-neighbour search over face embeddings."""

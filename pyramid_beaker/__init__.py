"""Beaker sessions and cache regions for Pyramid."""

"""Modules with decorated functions and views, scanned by the cache tests.

They are imported and scanned, never collected: no name starts with test_.
"""

"""Command-line tools of pyramid_beaker (see :mod:`.pbeaker`)."""

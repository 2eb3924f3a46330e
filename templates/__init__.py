"""amends' message templates, ``<locale>/<kind>.<channel>.<ext>.j2``, shipped as package data."""

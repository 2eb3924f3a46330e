"""Reporting: a case's casebook and the recovery report over a period."""

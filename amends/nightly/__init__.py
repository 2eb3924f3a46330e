"""The nightly run: check-ins kept, cases moved on, lapsed customers invited back."""

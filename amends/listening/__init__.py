"""Listening: public mentions, their sources, and which of them are complaints."""

"""Messages: the templates' one Jinja2 environment and the catalogue of what is written."""

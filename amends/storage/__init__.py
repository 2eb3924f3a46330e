"""Storage: the database, its tables and migrations, and imports from the business's own systems."""

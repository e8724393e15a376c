"""A second, in-memory adapter running the console's stories through the adapter port."""

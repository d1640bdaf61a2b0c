"""Children and their cases."""

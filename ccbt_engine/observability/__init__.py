"""observability package of the ccbt engine."""

"""security package of the ccbt engine."""

"""tracker package of the ccbt engine."""

"""cli package of the ccbt engine."""

"""storage package of the ccbt engine."""

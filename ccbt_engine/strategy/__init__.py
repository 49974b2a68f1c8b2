"""strategy package of the ccbt engine."""

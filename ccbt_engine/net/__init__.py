"""net package of the ccbt engine."""

"""dht package of the ccbt engine."""

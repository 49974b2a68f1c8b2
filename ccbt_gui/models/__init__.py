"""Qt item models over the engine facade's snapshot dataclasses."""

"""Read models (projections) rebuilt from the event log."""

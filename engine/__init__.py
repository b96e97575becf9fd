"""lianhu's write side: the Case aggregate, its commands and the event store."""

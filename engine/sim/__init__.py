"""A simulated county: seeded, deterministic residents, leaders and relays for lianhu.

Every module here draws only from `random.Random` instances passed in, in a fixed
order, so the same seed gives the same county, petitions and retellings in any process.
"""

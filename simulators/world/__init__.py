"""The synthetic world: seeded patients, orders, studies and IOD-conformant images."""

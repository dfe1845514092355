"""Files the demo ships: a small trainer that fails the way real ones do."""

"""Learning algorithms, one module per method."""

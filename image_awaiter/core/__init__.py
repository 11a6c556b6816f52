"""Pure decisions over plain data: image references, placement and targeting, readiness, pull
errors and facts, outcomes, the error hierarchy. No I/O, no client, no logging, no clock."""

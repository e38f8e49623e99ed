"""One module per AWS resource: read its current state, plan the change, apply it."""

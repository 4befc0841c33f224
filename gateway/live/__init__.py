"""Live calls: who waits for a person (queue) and the operator's leg that bridges them (leg)."""

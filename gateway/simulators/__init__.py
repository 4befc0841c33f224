"""The simulator: a citizen's phone and an operator's, in the browser."""

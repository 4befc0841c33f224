"""The outbox provider: records messages and calls instead of sending them (the default, for
development and demos; the simulator answers what it records)."""

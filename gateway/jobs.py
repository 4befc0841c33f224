"""rq jobs queued before the upgrade name `gateway.jobs.*`: they still run, from their new home."""

from gateway.workers.jobs import place_calls, send_messages

__all__ = ["place_calls", "send_messages"]

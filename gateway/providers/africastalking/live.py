"""Africa's Talking live-call control: the operator's answered call dequeues the next caller.

AT has no per-call URL and no way to move a live call between queues: the operator's leg is
answered with `<Dequeue>`, which bridges the longest-waiting caller of the department's queue
on our voice number, and a transfer is not possible.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from gateway.providers.africastalking.voice import XML_HEAD, say


def render_dequeue(notice: str, voice: str, number: str, department: str) -> str:
    """The operator's leg: who is calling, then bridge the department queue's next caller."""
    return (
        f"{XML_HEAD}<Response>{say(notice, voice)}"
        f"<Dequeue phoneNumber={quoteattr(number)} name={quoteattr(department)}/></Response>"
    )

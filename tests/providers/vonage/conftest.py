"""Vonage fixtures: the app with a Vonage account, and a worker pointed at the fake API."""

from tests.providers.vonage.support import vonage_client, vonage_worker

__all__ = ["vonage_client", "vonage_worker"]

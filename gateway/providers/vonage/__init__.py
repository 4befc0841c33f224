"""Vonage: JWT-signed JSON webhooks in, NCCO out, the Messages and Voice APIs through the SDK."""

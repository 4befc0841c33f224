"""HTTP handlers: they parse, call the domain, and render through a provider."""

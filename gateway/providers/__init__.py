"""One home per provider: `base` (the interfaces), `registry` (the one list), a package each."""

"""The receive session: a pure core (``core``) that decides, and a trio driver
(``driver``) that dials, waits and fetches as the core says."""

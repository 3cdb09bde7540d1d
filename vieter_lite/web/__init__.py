"""The HTTP layer: bottle routes, auth and the one place errors become responses."""

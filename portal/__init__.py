"""A small local portal for the settle-balance flow: server-side pages that call the function app's signed API."""

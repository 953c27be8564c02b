"""Getting a request to its provider and the answer back: routing, the upstream client, the relay."""

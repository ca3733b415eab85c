"""Bytes and tables on local disk or S3: one ``Root`` per location, atomic writes, content hashes,
the JSON encoder, and streaming table reads. Knows nothing of monitors; imports ``stats.errors`` only."""

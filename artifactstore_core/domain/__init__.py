"""Pure domain logic: names, references, manifests, events, retention. No I/O here."""

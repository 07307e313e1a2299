"""What every stage shares: config dataclasses and the CLI built from them, progress."""

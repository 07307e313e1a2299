"""What every stage shares: config dataclasses and the CLI built from them (config), the job runner over a
process pool or Ray (jobs), the one reject log (rejects), digest-checked done markers (resume), progress."""

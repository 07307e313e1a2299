"""`dclm convert`: open_lm training checkpoints <-> the DCLM Hugging Face layout (formats in dclm.model.checkpoint)."""

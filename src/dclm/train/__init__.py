"""`dclm train`: DCLM's open_lm training recipe at its scales (scales.py), on token data from tokenize-shuffle
(data.py), resumable (checkpoints.py), on one process or under torchrun with DDP/FSDP2 (dist.py)."""

"""`dclm eval`: DCLM's in-context-learning suite scores (CORE / EXTENDED) from per-task accuracies."""

"""DCLM enrichers (baselines/mappers/enrichers): mappers that add keys to a page."""

"""DCLM filters (baselines/mappers/filters): mappers that keep (`[page]`) or remove (`[]`) a page."""

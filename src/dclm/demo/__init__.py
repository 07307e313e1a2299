"""`dclm demo`: the whole curation loop on an embedded sample of web pages."""

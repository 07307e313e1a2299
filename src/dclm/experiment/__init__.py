"""`dclm experiment`: the spec (spec.py), the arms through the verbs (run.py), what is measured (evaluate.py), report.html (report.py)."""

import pytest

# the tiny_model / tiny_dir / tiny_tokenizer_file fixtures live in tests/conftest.py
pytest.importorskip("torch")
pytest.importorskip("transformers")

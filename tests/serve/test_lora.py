"""Per-row LoRA routing against PEFT's own forward."""

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from dclm.errors import DclmError  # noqa: E402
from dclm.serve.lora import attach_adapters  # noqa: E402


def test_routed_rows_match_peft(tiny_dir, adapter_dir):
    import dclm.hf  # noqa: F401
    from transformers import AutoModelForCausalLM

    from dclm.model import load_model

    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(tiny_dir)(ids).logits
        tuned = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), adapter_dir)(
            input_ids=ids).logits
        model = load_model(tiny_dir).eval()
        router = attach_adapters(model, [str(adapter_dir)])
        router.select([1, 0])  # row 0 on the adapter, row 1 on the base model, in one forward
        mixed = model(ids)
    torch.testing.assert_close(mixed[0], tuned[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mixed[1], plain[1], atol=1e-5, rtol=1e-5)


def test_foreign_adapter_is_refused(tiny_dir, tmp_path):
    from dclm.model import load_model

    with pytest.raises(DclmError, match="not a PEFT adapter"):
        attach_adapters(load_model(tiny_dir), [str(tmp_path)])

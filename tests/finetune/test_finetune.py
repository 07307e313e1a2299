"""`dclm finetune`: LoRA lowers held-out loss, the adapter loads in PEFT, --merge and --resume work."""

import json

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from dclm.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_bpe):
    from dclm.model import Transformer, get_config, save_model

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ft") / "base"
    save_model(Transformer(get_config("tiny")).eval(), d)
    tiny_bpe(d / "tokenizer.json", "the capital of france is paris. colour red green blue 123")
    return d


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    colours = ["red", "green", "blue"]
    path = tmp_path_factory.mktemp("data") / "sft.jsonl"
    with open(path, "w") as f:
        for i in range(60):  # a learnable rule: the response names the colour after the prompt's
            c = colours[i % 3]
            f.write(json.dumps({"prompt": f"colour {c} then", "response": f" {colours[(i + 1) % 3]}"}) + "\n")
    return path


def run(*args):
    assert main(["finetune", "--no-progress", *map(str, args)]) == 0


def test_lora_lowers_held_out_loss_and_loads_in_peft(base_dir, sft_file, tmp_path, capsys):
    out = tmp_path / "adapter"
    run("--model", base_dir, "--data", sft_file, "--output", out, "--lora-rank", 4, "--lr", 1e-2,
        "--epochs", 4, "--batch-size", 8, "--save-every", 10, "--merge")
    printed = capsys.readouterr().out
    assert "trainable parameters" in printed and "held-out loss" in printed
    result = json.loads((out / "finetune.json").read_text())
    assert result["eval_loss_after"] < 0.7 * result["eval_loss_before"]
    assert 0 < result["trainable_share"] < 0.2 and result["steps"] == len(result["losses"]) == 28

    import dclm.hf  # noqa: F401
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        plain = base(ids).logits
        tuned = peft.PeftModel.from_pretrained(base, out)(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged")(ids).logits
    assert not torch.allclose(plain, tuned, atol=1e-3)
    torch.testing.assert_close(merged, tuned, atol=1e-4, rtol=1e-4)
    assert (out / "merged" / "tokenizer.json").is_file()


def test_resume_latest_continues_to_the_same_adapter(base_dir, tmp_path):
    pages = tmp_path / "pages.txt"
    pages.write_text("the capital of france is paris. " * 60)
    args = ["--model", base_dir, "--data", pages, "--lora-rank", 2, "--lr", 5e-3, "--max-seq-len", 16,
            "--batch-size", 4, "--epochs", 2, "--save-every", 3, "--target", "attention"]
    run(*args, "--output", tmp_path / "full")
    full = json.loads((tmp_path / "full" / "finetune.json").read_text())
    import shutil

    # an interrupted run: only an intermediate checkpoint of the same run survives
    saved = sorted((tmp_path / "full" / "checkpoints").glob("step-*"))[0]
    assert 0 < int(saved.name.split("-")[1]) < full["steps"]
    shutil.copytree(saved, tmp_path / "cut" / "checkpoints" / saved.name)
    run(*args, "--output", tmp_path / "cut", "--resume", "latest")
    resumed = json.loads((tmp_path / "cut" / "finetune.json").read_text())
    assert resumed["steps"] == full["steps"] and resumed["losses"] == full["losses"]
    from safetensors.torch import load_file

    a = load_file(tmp_path / "full" / "adapter_model.safetensors")
    b = load_file(tmp_path / "cut" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bad_flags_are_one_line_errors(base_dir, tmp_path, capsys):
    assert main(["finetune", "--model", str(base_dir), "--data", str(tmp_path / "none.jsonl"),
                 "--output", str(tmp_path / "o")]) != 0
    assert main(["finetune", "--model", str(base_dir), "--data", "x", "--output", "o", "--target", "mlp"]) != 0
    err = capsys.readouterr().err
    assert "training data not found" in err and "--target: mlp" in err

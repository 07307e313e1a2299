import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_bpe):
    from dclm.model import Transformer, get_config, save_model

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("serve") / "tiny"
    save_model(Transformer(get_config("tiny")).eval(), d)
    tiny_bpe(d / "tokenizer.json", "User: the quick brown fox jumps over the lazy dog.\n\nAssistant: A stop here.")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`dclm serve` in a subprocess on a free loopback port."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "dclm", "serve", "--port", str(self.port), *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx2 as httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not come up")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out


@pytest.fixture(scope="session")
def adapter_dir(tiny_dir):
    """A PEFT LoRA adapter on every projection of the tiny model, with nonzero B (so it changes outputs)."""
    peft = pytest.importorskip("peft")
    import dclm.hf  # noqa: F401
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["in_proj", "out_proj", "w12", "w3"],
                          init_lora_weights=False)
    model = peft.get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    d = tiny_dir.parent / "adapter"
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def server(tiny_dir, adapter_dir):
    s = Server("--model", str(tiny_dir), "--served-model-name", "tiny", "--adapter", f"ft={adapter_dir}",
               "--max-batch-size", "4",
               "--max-prompt-tokens", "64", "--max-new-tokens-limit", "64", "--max-body-bytes", "4096")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def start_server():
    return Server

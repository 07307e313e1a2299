"""`dclm export gguf|onnx`: a DCLM checkpoint for llama.cpp / ollama (GGUF) or ONNX Runtime."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.export.configs import GGUFExportConfig, ONNXExportConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "export",
        help="write a checkpoint as GGUF (llama.cpp, ollama) or ONNX (ONNX Runtime)",
        description="Export a checkpoint in the apple/DCLM-7B layout for other runtimes. Nothing is approximated: "
        "a checkpoint the target graph cannot compute exactly is refused.",
    )
    verbs = p.add_subparsers(dest="export_format", metavar="FORMAT")
    g = verbs.add_parser(
        "gguf", help="a GGUF file for stock llama.cpp / llama-cpp-python / ollama",
        description="Write the model as llama.cpp's `olmoe` architecture (LayerNorms as RMSNorms over centred "
        "inputs, the SwiGLU as one expert: exact) with the tokenizer as a gpt2 BPE vocabulary (pre-tokenizer "
        "olmo). Tensors are streamed one at a time. Prints a JSON summary.")
    add_config_arguments(g, GGUFExportConfig)
    g.set_defaults(func=_gguf)
    o = verbs.add_parser(
        "onnx", help="an ONNX decoder (past-KV inputs/outputs) for ONNX Runtime",
        description="Write model.onnx (+ model.onnx.data), tokenizer.json and dclm_onnx.json into a directory; "
        "run it with `dclm generate --backend onnx --model DIR`. Prints a JSON summary.")
    add_config_arguments(o, ONNXExportConfig)
    o.set_defaults(func=_onnx)

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def _gguf(args: argparse.Namespace) -> int:
    from dclm.export.configs import GGUFExportConfig
    from dclm.export.gguf import export_gguf
    from dclm.runtime.config import config_from_args, to_dict

    print(json.dumps(to_dict(export_gguf(config_from_args(GGUFExportConfig, args)))))
    return 0


def _onnx(args: argparse.Namespace) -> int:
    from dclm.export.configs import ONNXExportConfig
    from dclm.export.onnx import export_onnx
    from dclm.runtime.config import config_from_args, to_dict

    print(json.dumps(to_dict(export_onnx(config_from_args(ONNXExportConfig, args)))))
    return 0

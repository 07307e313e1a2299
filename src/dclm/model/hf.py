"""DCLM / open_lm models in plain transformers: `import dclm.hf` and the Auto classes know model_type "openlm".

    import dclm.hf
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained("path/to/DCLM-7B", dtype=torch.bfloat16)

No trust_remote_code and no open_lm install: the config reads the published apple/DCLM-7B config.json
(and its older `params_args_dict`/`model_norm` spelling), the weights load under their published names
(`model.` prefix, packed `in_proj`/`w12`, persistent rotary `inv_freq` buffers), `weight_tying: false`
keeps the head untied whatever `tie_word_embeddings` says, and `generate()` runs with transformers' KV
caches and left-padded attention masks. The default stop token is `<|endoftext|>` (id 0), which the
released config does not name.
"""

from __future__ import annotations

import json

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from dclm.model.checkpoint import args_from_config, hf_config_dict
from dclm.model.openlm import LayerNorm, ModelArgs, RotaryEmbedding, Transformer
from dclm.model.openlm import attention_mask as build_mask

__all__ = ["ENDOFTEXT_ID", "OpenLMConfig", "OpenLMForCausalLM", "OpenLMPreTrainedModel", "from_transformer"]

ENDOFTEXT_ID = 0  # GPT-NeoX-20B `<|endoftext|>`: DCLM's bos = eos = unk


class OpenLMConfig(PreTrainedConfig):
    """config.json of apple/DCLM-7B; field names are open_lm's."""

    model_type = "openlm"
    attribute_map = {
        "hidden_size": "dim",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "max_position_embeddings": "seq_len",
    }

    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    vocab_size: int = 50432
    norm_eps: float = 1e-5
    seq_len: int = 2048
    post_embed_norm: bool = False
    weight_tying: bool = False
    apply_qk_norm: bool = True
    qk_norm: bool = True
    norm_type: str = "gain_only_lp_layer_norm"
    ffn_type: str = "swiglu"
    attn_name: str | None = "torch_attn"
    positional_embedding_type: str = "rotary"
    moe_freq: int = 0
    model: str | None = None
    params: str | None = None
    tie_word_embeddings: bool = False
    use_cache: bool = True
    bos_token_id: int | None = ENDOFTEXT_ID
    eos_token_id: int | None = ENDOFTEXT_ID

    def __post_init__(self, **kwargs):
        nested = kwargs.pop("params_args_dict", None) or {}
        legacy_norm = kwargs.pop("model_norm", None) or nested.get("model_norm")
        super().__post_init__(**kwargs)
        fields = self.__dataclass_fields__
        for key, value in nested.items():  # the first DCLM-7B upload nested everything here
            if key in fields:
                setattr(self, key, value)
        if legacy_norm is not None:
            self.norm_type = legacy_norm
        if "hidden_dim" in nested:
            self.dim = nested["hidden_dim"]
        if self.architectures is None:
            self.architectures = ["OpenLMForCausalLM"]
        self.tie_word_embeddings = bool(self.weight_tying)  # open_lm's flag wins over HF's
        self.model_args()  # validate now: unsupported variants fail at load time with one line

    def model_args(self) -> ModelArgs:
        return args_from_config({k: getattr(self, k) for k in self.__dataclass_fields__ if hasattr(self, k)},
                                "OpenLMConfig")

    @classmethod
    def from_model_args(cls, args: ModelArgs, **kwargs) -> "OpenLMConfig":
        fields = cls.__dataclass_fields__
        values = {k: v for k, v in hf_config_dict(args).items() if k in fields}
        return cls(**values, **kwargs)

    def to_diff_dict(self) -> dict:
        # Always the full DCLM-7B layout (key order included), whatever transformers' defaults are.
        dtype = self.dtype if isinstance(self.dtype, torch.dtype) else torch.float32
        out = hf_config_dict(self.model_args(), dtype)
        out["transformers_version"] = self.transformers_version or __import__("transformers").__version__
        return out

    def to_json_string(self, use_diff: bool = True) -> str:
        if use_diff:  # transformers sorts keys; the released file keeps open_lm's order
            return json.dumps(self.to_diff_dict(), indent=2) + "\n"
        return super().to_json_string(use_diff)

    def to_dict(self) -> dict:
        base = super().to_dict()
        base.update(self.to_diff_dict())
        return base


class OpenLMPreTrainedModel(PreTrainedModel):
    config_class = OpenLMConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]
    _supports_sdpa = True
    main_input_name = "input_ids"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """open_lm's init (stds tagged by the Transformer); guarded init functions skip loaded tensors."""
        if hasattr(module, "init_std"):
            s = module.init_std
            init.trunc_normal_(module.weight, std=s, a=-3 * s, b=3 * s)
        elif isinstance(module, LayerNorm):
            init.ones_(module.weight)
        elif isinstance(module, RotaryEmbedding):
            a = self.config.model_args()
            init.copy_(module.inv_freq, RotaryEmbedding(a.head_dim, a.rope_base).inv_freq)


class OpenLMForCausalLM(OpenLMPreTrainedModel, GenerationMixin):
    def __init__(self, config: OpenLMConfig):
        super().__init__(config)
        self.model = Transformer(config.model_args(), init=False)
        self.post_init()
        self._default_stop_token()

    def _default_stop_token(self) -> None:
        # the released config names no special tokens; DCLM's bos = eos = <|endoftext|>
        if self.generation_config is not None and self.generation_config.eos_token_id is None:
            self.generation_config.eos_token_id = ENDOFTEXT_ID
            self.generation_config.bos_token_id = ENDOFTEXT_ID

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        out = super().from_pretrained(*args, **kwargs)
        (out[0] if isinstance(out, tuple) else out)._default_stop_token()
        return out

    def get_input_embeddings(self):
        return self.model.tok_embeddings

    def get_output_embeddings(self):
        return self.model.output

    def tie_weights(self, *args, **kwargs):
        if self.config.weight_tying:
            self.model.output.weight = self.model.tok_embeddings.weight

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values=None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        if inputs_embeds is not None:
            raise ValueError("OpenLMForCausalLM takes input_ids, not inputs_embeds")
        cache = cache if cache is not None else past_key_values
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache()
        B, T = input_ids.shape
        past = cache.get_seq_length() if cache is not None else 0
        device = input_ids.device
        # keys the cache will hand back: past + T for a dynamic cache, the whole buffer for a static one
        key_len = cache.get_mask_sizes(T, 0)[0] if cache is not None else T
        mask = None
        if attention_mask is not None and attention_mask.ndim == 4:
            mask = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
            # a query always sees itself, so rows of left padding stay finite instead of NaN
            rows = torch.arange(T, device=device)
            mask = mask.clone()
            mask[:, :, rows, past + rows] = True
        elif attention_mask is not None and (not bool(attention_mask.all()) or key_len != past + T):
            valid = attention_mask.bool()
            if valid.shape[1] < key_len:  # slots past the current step are excluded by causality anyway
                valid = nn.functional.pad(valid, (0, key_len - valid.shape[1]), value=True)
            mask = build_mask(valid[:, :key_len], torch.arange(past, past + T, device=device))
            if position_ids is None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past : past + T]
        elif (past and T > 1) or key_len != past + T:
            mask = build_mask(torch.ones(B, key_len, dtype=torch.bool, device=device), torch.arange(past, past + T, device=device))
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=device).expand(B, T)
        logits = self.model(input_ids, positions=position_ids, mask=mask, cache=cache,
                            last_only=logits_to_keep == 1 and labels is None)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache if use_cache else None)


AutoConfig.register("openlm", OpenLMConfig, exist_ok=True)
AutoModelForCausalLM.register(OpenLMConfig, OpenLMForCausalLM, exist_ok=True)


def from_transformer(model: Transformer) -> OpenLMForCausalLM:
    """Wrap one of our Transformers (weights shared, not copied) as a transformers model."""
    config = OpenLMConfig.from_model_args(model.args)
    with torch.device("meta"):
        hf = OpenLMForCausalLM(config)
    hf.model = model
    return hf.eval()

"""`dclm finetune`: LoRA adapters (PEFT) for DCLM/open_lm checkpoints through dclm.hf.OpenLMForCausalLM."""

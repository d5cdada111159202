"""microgpt's GPT for Hugging Face transformers: the configuration.

Written by microgpt's export (https://github.com/karpathy/microgpt lineage); loaded with
AutoConfig.from_pretrained(DIR, trust_remote_code=True). The names are transformers' usual ones
(hidden_size, num_hidden_layers, ...) so its utilities (generation, caches) find them; the
architecture switches are microgpt's GPTConfig fields, with the seed's values as defaults.
"""

from typing import ClassVar, List, Optional

from transformers import PretrainedConfig


class MicroGPTConfig(PretrainedConfig):
    model_type = "microgpt"
    keys_to_ignore_at_inference: ClassVar[List[str]] = ["past_key_values"]

    vocab_size: int = 27
    hidden_size: int = 16             # n_embd
    num_hidden_layers: int = 1        # n_layer
    num_attention_heads: int = 4      # n_head
    max_position_embeddings: int = 16  # block_size: the context the model was trained on
    intermediate_size: int = 64       # the MLP's width: always 4 * hidden_size
    pos: str = "learned"              # learned (the seed's wpe) | rope (rotary, no wpe)
    qk_norm: bool = False             # RMS-normalise q and k (after the rotation)
    mlp: str = "relu"                 # relu (the seed's) | relu2 (ReLU squared)
    final_norm: bool = False          # an RMSNorm before lm_head
    softcap: float = 0.0              # logits = softcap * tanh(logits / softcap); 0: off
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5        # rmsnorm(x) = x * (mean(x^2) + eps) ** -0.5, gainless
    tie_word_embeddings: bool = False  # lm_head is its own matrix
    use_cache: bool = True            # keep keys and values of earlier positions when generating
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None

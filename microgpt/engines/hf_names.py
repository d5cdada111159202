"""Our parameter names and config <-> Hugging Face transformers' NanoChatForCausalLM.

`--arch nanochat` is exactly that model's math (tests/test_modern.py checks the logits to 1e-10
in float64), so a checkpoint maps one to one, with no conversion: each of our matrices [out, in]
is the nn.Linear / nn.Embedding weight of the same shape. What matches what:

* wte -> model.embed_tokens; lm_head -> lm_head (untied); no wpe (rotary positions);
* layer{i}.attn_w{q,k,v,o} -> model.layers.{i}.self_attn.{q,k,v,o}_proj (no biases);
* layer{i}.mlp_fc{1,2} -> model.layers.{i}.mlp.fc{1,2} (intermediate_size = 4 n_embd, relu2);
* the gainless RMSNorms (after the embedding, before each block, on q and k after the rotation,
  before lm_head) have no weights. Our eps RMSNORM_EPS = 1e-5 is rms_norm_eps = 1e-5 there
  (x * rsqrt(mean(x^2) + eps)); transformers' default is 1e-6, so it must be written.
* rotary: rope_parameters {"rope_type": "default", "rope_theta": rope_theta}, rotate_half on
  the two halves of each head; softcap -> final_logit_softcapping (None when 0).
"""

from microgpt.config import RMSNORM_EPS
from microgpt.errors import MicroGPTError
from microgpt.params import param_shapes

LAYER_PARTS = {"attn_wq": "self_attn.q_proj", "attn_wk": "self_attn.k_proj", "attn_wv": "self_attn.v_proj",
               "attn_wo": "self_attn.o_proj", "mlp_fc1": "mlp.fc1", "mlp_fc2": "mlp.fc2"}
NANOCHAT = dict(pos="rope", qk_norm=True, mlp="relu2", final_norm=True)  # what the stock class always has


def hf_name(name):
    """Our parameter name -> its key in NanoChatForCausalLM's state dict."""
    if name == "wte":
        return "model.embed_tokens.weight"
    if name == "lm_head":
        return "lm_head.weight"
    layer, _, part = name.partition(".")
    if not (layer.startswith("layer") and layer[5:].isdigit() and part in LAYER_PARTS):
        raise MicroGPTError(f"the parameter {name!r} has no NanoChatForCausalLM counterpart")
    return f"model.layers.{int(layer[5:])}.{LAYER_PARTS[part]}.weight"


def hf_names(config):
    """{our name: Hugging Face key} for every parameter of `config`, in our order."""
    check_nanochat(config)
    return {name: hf_name(name) for name, _ in param_shapes(config)}


def check_nanochat(config):
    """Refuse a GPTConfig that NanoChatForCausalLM cannot compute."""
    for field, want in NANOCHAT.items():
        if getattr(config, field) != want:
            raise MicroGPTError(f"NanoChatForCausalLM needs {field} = {want!r}, this model has "
                                f"{getattr(config, field)!r}: train with --arch nanochat")


def nanochat_config(config):
    """The keyword arguments of transformers.NanoChatConfig for our GPTConfig (token ids aside)."""
    check_nanochat(config)
    return dict(vocab_size=config.vocab_size, hidden_size=config.n_embd, intermediate_size=4 * config.n_embd,
                num_hidden_layers=config.n_layer, num_attention_heads=config.n_head,
                num_key_value_heads=config.n_head, max_position_embeddings=config.block_size,
                hidden_act="relu2", rms_norm_eps=RMSNORM_EPS,
                rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
                final_logit_softcapping=config.softcap or None, attention_bias=False, tie_word_embeddings=False)

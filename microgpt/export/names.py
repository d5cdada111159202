"""What a microgpt model is called in Hugging Face transformers: its architecture, its config.json,
its parameter names; and the way back from a transformers config.json.

Two architectures, one naming:
* `nanochat` (model_type "nanochat", transformers' own NanoChatForCausalLM, no remote code):
  rotary positions, q/k RMS-normalised after the rotation, ReLU², a final norm, no wpe; the logit
  soft cap is its final_logit_softcapping (0 = null). microgpt's `--arch nanochat` is this.
* `microgpt` (model_type "microgpt", our modeling_microgpt.py with trust_remote_code=True): every
  other combination of GPTConfig's switches, the seed's architecture first of all.
Both name parameters as NanoChatForCausalLM does; the seed's wpe is model.embed_positions.

GPTConfig's architecture fields (pos, qk_norm, mlp, final_norm, softcap, rope_theta) are read
with getattr and the seed's values as defaults, so this works before and after they exist.
"""


from microgpt.config import ARCH_PRESETS, RMSNORM_EPS, GPTConfig
from microgpt.engines import hf_names
from microgpt.errors import MicroGPTError

ARCH_DEFAULTS = ARCH_PRESETS["seed"]
AUTO_MAP = {"AutoConfig": "configuration_microgpt.MicroGPTConfig",
            "AutoModelForCausalLM": "modeling_microgpt.MicroGPTForCausalLM"}
HF_DTYPES = {"F64": "float64", "F32": "float32"}


def arch(config):
    """GPTConfig's architecture switches."""
    return {k: getattr(config, k) for k in ARCH_DEFAULTS}


def model_type(config):
    a = arch(config)
    native = a["pos"] == "rope" and a["qk_norm"] and a["mlp"] == "relu2" and a["final_norm"]
    return "nanochat" if native else "microgpt"


def hf_name(name):
    """The transformers parameter name of one of ours: layer3.attn_wq -> model.layers.3.self_attn.q_proj.weight
    (NanoChatForCausalLM's names; the seed's learned positions, which it lacks, as model.embed_positions)."""
    return "model.embed_positions.weight" if name == "wpe" else hf_names.hf_name(name)


def hf_config(config, dtype, bos, eos, fingerprint):
    """config.json of a model: transformers' names for the sizes, and the architecture's own keys."""
    C = config.n_embd
    a = arch(config)
    common = {"vocab_size": config.vocab_size, "hidden_size": C, "intermediate_size": 4 * C,
              "num_hidden_layers": config.n_layer, "num_attention_heads": config.n_head,
              "max_position_embeddings": config.block_size, "rms_norm_eps": RMSNORM_EPS,
              "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos, "tie_word_embeddings": False,
              "dtype": HF_DTYPES[dtype], "use_cache": True}
    if model_type(config) == "nanochat":
        out = {"architectures": ["NanoChatForCausalLM"], "model_type": "nanochat", **common,
               "num_key_value_heads": config.n_head, "hidden_act": "relu2", "attention_bias": False,
               "attention_dropout": 0.0, "rope_parameters": {"rope_type": "default", "rope_theta": a["rope_theta"]},
               "final_logit_softcapping": a["softcap"] or None}
    else:
        out = {"architectures": ["MicroGPTForCausalLM"], "model_type": "microgpt", "auto_map": AUTO_MAP, **common,
               **a}
    out["microgpt_fingerprint"] = fingerprint
    return out


# ---------------------------------------------------------------- back: config.json -> GPTConfig fields


def config_fields(cfg, where):
    """(GPTConfig fields as a dict, notes) from a transformers config.json object, or a MicroGPTError
    saying what architecture it is and what microgpt would need to run it."""
    kind = cfg.get("model_type") if isinstance(cfg, dict) else None
    if kind not in ("nanochat", "microgpt"):
        archs = cfg.get("architectures") if isinstance(cfg, dict) else None
        shown = f"{kind!r}" + (f" ({', '.join(map(str, archs))})" if isinstance(archs, list) else "")
        raise MicroGPTError(f"{where} is a {shown} model: microgpt imports only nanochat (NanoChatForCausalLM) "
                            f"and its own exports (microgpt)")

    def need(key, types=int):
        v = cfg.get(key)
        if not isinstance(v, types) or isinstance(v, bool) or (isinstance(v, int) and v <= 0):
            raise MicroGPTError(f"{where}: {key} is {v!r}, not a positive number")
        return v

    def refuse(why, needed):
        return MicroGPTError(f"{where} is a {kind} model with {why}: microgpt would need {needed} to run it")

    C, H = need("hidden_size"), need("num_attention_heads")
    fields = {"vocab_size": need("vocab_size"), "n_layer": need("num_hidden_layers"), "n_embd": C, "n_head": H,
              "block_size": need("max_position_embeddings")}
    if cfg.get("intermediate_size", 4 * C) != 4 * C:
        raise refuse(f"an MLP of width {cfg['intermediate_size']}", f"MLPs of any width (its are 4 x n_embd = {4 * C})")
    if cfg.get("tie_word_embeddings"):
        raise refuse("lm_head tied to the embedding", "tied weights")
    if cfg.get("head_dim") not in (None, C // H) or C % H:
        raise refuse(f"head_dim {cfg.get('head_dim')}", "heads of another width than n_embd / n_head")
    notes = []
    eps = cfg.get("rms_norm_eps", RMSNORM_EPS)
    if eps != RMSNORM_EPS:
        notes.append(f"its RMSNorm eps is {eps}, microgpt's is {RMSNORM_EPS}: logits differ slightly (~{eps:g})")
    if kind == "microgpt":
        a = {k: cfg.get(k, v) for k, v in ARCH_DEFAULTS.items()}
        if a["pos"] not in ("learned", "rope") or a["mlp"] not in ("relu", "relu2"):
            raise MicroGPTError(f"{where}: unknown pos {a['pos']!r} or mlp {a['mlp']!r}")
    else:
        if cfg.get("num_key_value_heads", H) not in (None, H):
            raise refuse(f"{cfg['num_key_value_heads']} key/value heads for {H} query heads (grouped-query attention)",
                         "grouped-query attention")
        if cfg.get("hidden_act", "relu2") != "relu2":
            raise refuse(f"activation {cfg['hidden_act']!r}", "that activation (it has relu and relu2)")
        if cfg.get("attention_bias"):
            raise refuse("attention biases", "biases")
        rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        if not isinstance(rope, dict) or rope.get("rope_type", rope.get("type", "default")) != "default":
            raise refuse(f"rope scaling {rope!r}", "scaled rotary positions")
        cap = cfg.get("final_logit_softcapping", 15.0)
        a = {"pos": "rope", "qk_norm": True, "mlp": "relu2", "final_norm": True, "softcap": float(cap or 0.0),
             "rope_theta": float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))}
    return {**fields, **a}, notes


def gpt_config(fields):
    """The GPTConfig of those fields (config_fields made them), checked."""
    return GPTConfig(**fields).validate()

"""microgpt's GPT for Hugging Face transformers: the model.

Written by microgpt's export; loaded with AutoModelForCausalLM.from_pretrained(DIR,
trust_remote_code=True). It computes what microgpt's engines compute, switch by switch:

    x = wte[token] (+ wpe[position] with learned positions)
    x = rmsnorm(x)                                   gainless: no learned scale, eps 1e-5
    per layer:  x = x + attn(rmsnorm(x))             causal, n_head heads, scale head_dim ** -0.5
                x = x + mlp(rmsnorm(x))              fc2(relu(fc1 x)) or fc2(relu(fc1 x) ** 2)
    (x = rmsnorm(x) with final_norm)
    logits = lm_head x  (softcap * tanh(logits / softcap) with a soft cap)

With rotary positions q and k are rotated pairwise, the pair being (i, i + head_dim / 2) as in
nanochat, and with qk_norm RMS-normalised after the rotation. No biases, lm_head untied. The
parameter names are those of transformers' NanoChatForCausalLM (model.embed_tokens, model.layers.N.
self_attn.q_proj, mlp.fc1, lm_head), plus model.embed_positions for learned positions.
"""

from typing import ClassVar, List

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_microgpt import MicroGPTConfig


def rmsnorm(x, eps):
    return x * (x.pow(2).mean(-1, keepdim=True) + eps).rsqrt()


def rotary(x, cos, sin):
    """x: [B, H, T, D]; cos, sin: [T, D / 2]. Rotates each pair (x[i], x[i + D / 2]) by its angle."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


class MicroGPTAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        C = config.hidden_size
        self.n_head, self.layer_idx = config.num_attention_heads, layer_idx
        self.head_dim = C // self.n_head
        self.config = config
        self.q_proj = nn.Linear(C, C, bias=False)
        self.k_proj = nn.Linear(C, C, bias=False)
        self.v_proj = nn.Linear(C, C, bias=False)
        self.o_proj = nn.Linear(C, C, bias=False)

    def forward(self, x, rope, key_mask, past_key_values):
        B, T, C = x.shape
        q, k, v = (p(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # [B, H, T, D]
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        if rope is not None:
            q, k = rotary(q, *rope), rotary(k, *rope)
        if self.config.qk_norm:
            q, k = rmsnorm(q, self.config.rms_norm_eps), rmsnorm(k, self.config.rms_norm_eps)
        if past_key_values is not None:  # the keys and values of earlier positions, then these
            k, v = past_key_values.update(k, v, self.layer_idx)
        S = k.shape[2]  # positions attended to: the cached ones and these T
        att = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5  # [B, H, T, S]
        # causal: query t (at position S - T + t) sees keys 0 .. S - T + t
        causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
        allowed = causal if key_mask is None else causal & key_mask[:, None, None, :S].bool()
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.o_proj(y)


class MicroGPTMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.relu2 = config.mlp == "relu2"
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc2(h * h if self.relu2 else h)


class MicroGPTBlock(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.eps = config.rms_norm_eps
        self.self_attn = MicroGPTAttention(config, layer_idx)
        self.mlp = MicroGPTMLP(config)

    def forward(self, x, rope, key_mask, past_key_values):
        x = x + self.self_attn(rmsnorm(x, self.eps), rope, key_mask, past_key_values)
        return x + self.mlp(rmsnorm(x, self.eps))


class MicroGPTPreTrainedModel(PreTrainedModel):
    config_class = MicroGPTConfig
    base_model_prefix = "model"
    _no_split_modules: ClassVar[List[str]] = ["MicroGPTBlock"]

    def _init_weights(self, module):
        # microgpt's initialisation: every matrix gauss(0, 0.08)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.08)


class MicroGPTModel(MicroGPTPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        for name, allowed in (("pos", ("learned", "rope")), ("mlp", ("relu", "relu2"))):
            if getattr(config, name) not in allowed:
                raise ValueError(f"microgpt config: {name} must be one of {allowed}, not {getattr(config, name)!r}")
        if config.intermediate_size != 4 * config.hidden_size:
            raise ValueError("microgpt config: intermediate_size must be 4 * hidden_size")
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.pos == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(MicroGPTBlock(config, i) for i in range(config.num_hidden_layers))
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def _rope(self, positions, dtype):
        """(cos, sin), [T, head_dim / 2], computed in the model's dtype (float64 models: exact)."""
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim
        inv_freq = (1.0 / self.config.rope_theta ** exponents).to(dtype)
        angles = positions.to(dtype)[:, None] * inv_freq[None, :]
        return angles.cos(), angles.sin()

    def forward(self, input_ids, key_mask=None, past_key_values=None):
        B, T = input_ids.shape
        start = past_key_values.get_seq_length() if past_key_values is not None else 0
        if start + T > self.config.max_position_embeddings:
            raise ValueError(f"microgpt: {start + T} positions, but the model reads at most "
                             f"{self.config.max_position_embeddings} (its block_size)")
        positions = torch.arange(start, start + T, device=input_ids.device)
        x = self.embed_tokens(input_ids)
        rope = None
        if self.config.pos == "learned":
            x = x + self.embed_positions(positions)[None]
        else:
            rope = self._rope(positions, x.dtype)
        x = rmsnorm(x, self.config.rms_norm_eps)
        for layer in self.layers:
            x = layer(x, rope, key_mask, past_key_values)
        if self.config.final_norm:
            x = rmsnorm(x, self.config.rms_norm_eps)
        return x


class MicroGPTForCausalLM(MicroGPTPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = MicroGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        if input_ids is None:
            raise ValueError("microgpt: pass input_ids (inputs_embeds are not supported)")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        x = self.model(input_ids, attention_mask, past_key_values if use_cache else None)
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(x[:, keep, :])
        cap = self.config.softcap
        if cap:
            logits = cap * torch.tanh(logits / cap)
        loss = None
        if labels is not None:  # the mean cross-entropy of each next token (labels = input_ids, shifted here)
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                               labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=past_key_values if use_cache else None)


__all__ = ["MicroGPTForCausalLM", "MicroGPTModel", "MicroGPTPreTrainedModel"]

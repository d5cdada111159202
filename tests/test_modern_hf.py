"""`--arch nanochat` is Hugging Face transformers' NanoChatForCausalLM: a tiny one with random
weights, copied through microgpt/engines/hf_names.py into our numpy and torch engines, gives the
same logits (float64: 1e-10; the stock float32 model: 1e-4). Skipped without transformers."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
np = pytest.importorskip("numpy")

from helpers import FLOAT64  # noqa: E402
from transformers import NanoChatConfig, NanoChatForCausalLM  # noqa: E402
from transformers.models.nanochat import modeling_nanochat  # noqa: E402

from microgpt import MicroGPTError  # noqa: E402
from microgpt.config import GPTConfig, arch_preset  # noqa: E402
from microgpt.engines import get_engine  # noqa: E402
from microgpt.engines.hf_names import hf_names, nanochat_config  # noqa: E402

CONFIG = GPTConfig(vocab_size=11, n_layer=2, n_embd=16, n_head=2, block_size=8,
                   **{**arch_preset("nanochat"), "softcap": 3.0, "rope_theta": 50.0})  # both felt in 8 positions
IDS = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]]


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    model = NanoChatForCausalLM(NanoChatConfig(**nanochat_config(CONFIG)))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def _ours(hf_model, engine):
    state = hf_model.state_dict()
    weights = {ours: state[key].to(torch.float64).numpy() for ours, key in hf_names(CONFIG).items()}
    assert set(hf_names(CONFIG).values()) == set(state)  # every HF tensor has a name here, and back
    return get_engine(engine).Model(CONFIG, weights, FLOAT64[engine])


def _logits(model):
    """Our logits [B, T, V], through the KV-cache generator (one position at a time)."""
    gen = model.generator(len(IDS))
    return np.array([gen.next_logits([row[p] for row in IDS], p) for p in range(len(IDS[0]))]).transpose(1, 0, 2)


def _float64_throughout(monkeypatch):
    """transformers computes its RMSNorm in float32 (x.float()) and the rotary angles in float32
    whatever the model's dtype: these two patches keep its float64 model in float64 (its own
    _norm; the same inv_freq formula, checked against its float32 buffer), so the comparison
    sees the math and not float32 rounding."""
    monkeypatch.setattr(modeling_nanochat.NanoChatRMSNorm, "forward", lambda self, x: self._norm(x))

    def rotary64(self, x, position_ids):
        d = CONFIG.head_dim
        inv_freq = 1.0 / (CONFIG.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        torch.testing.assert_close(self.inv_freq.to(torch.float64), inv_freq, rtol=1e-6, atol=0)  # its own (float32)
        angles = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat((angles, angles), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    monkeypatch.setattr(modeling_nanochat.NanoChatRotaryEmbedding, "forward", rotary64)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_logits_equal_nanochat_in_float64(engine, hf_model, monkeypatch):
    _float64_throughout(monkeypatch)
    with torch.no_grad():
        want = hf_model.double()(torch.tensor(IDS)).logits.numpy()
    got = _logits(_ours(hf_model, engine))
    assert np.abs(got - want).max() <= 1e-10
    assert np.abs(want).max() > 1.0  # (logits that mean something: the cap at 3 bends them)


def test_logits_equal_the_stock_float32_model(hf_model):
    """No patches: transformers' own code in float32 against ours in float64."""
    with torch.no_grad():
        want = hf_model.float()(torch.tensor(IDS)).logits.double().numpy()
    got = _logits(_ours(hf_model, "numpy"))
    assert np.abs(got - want).max() <= 1e-4


def test_the_mapping_refuses_other_architectures():
    with pytest.raises(MicroGPTError, match="--arch nanochat"):
        nanochat_config(GPTConfig(**{**arch_preset("nanochat"), "mlp": "relu"}))
    assert nanochat_config(GPTConfig(**{**arch_preset("nanochat"), "softcap": 0.0}))["final_logit_softcapping"] is None

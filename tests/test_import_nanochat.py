"""nanochat <-> microgpt: a tiny randomly initialised NanoChatForCausalLM made by transformers reads
as a microgpt model (config, tokenizer, weights by name); anything else is refused in one line; our
modeling code with nanochat's switches computes NanoChatForCausalLM's logits.

transformers' NanoChat computes its RMSNorm and its rotary angles in float32 even in a float64
model, so float64 comparisons (<= 1e-10) patch those two to compute in the model's dtype;
float32 ones (<= 1e-5) run it as shipped."""

import json
import shutil
import types

import pytest
from helpers import assert_one_line_error, run_cli

from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS
from microgpt.export.from_hf import read_folder
from microgpt.export.tokenizer_json import tokenizer_config, tokenizer_json
from microgpt.tokenizers.bpe import BPETokenizer

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'microgpt[hf]')")
torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'microgpt[hf]')")
from transformers.models.nanochat import modeling_nanochat  # noqa: E402

SIZES = {"hidden_size": 16, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
         "max_position_embeddings": 16, "rms_norm_eps": 1e-5}


def tokenizer():
    text = "The quick brown fox, 12+34=46. Ünïcödé 日本語 😀 " * 10
    return BPETokenizer.train(text, 300).with_special_tokens(CHAT_SPECIAL_TOKENS)


def nanochat(folder, dtype=torch.float32, **changes):
    """A NanoChatForCausalLM with random weights (std 0.3, so the logits are far from 0) saved to
    `folder` by transformers, with our tokenizer beside it; returns (model, tokenizer)."""
    tok = tokenizer()
    torch.manual_seed(0)
    config = transformers.NanoChatConfig(vocab_size=tok.vocab_size, bos_token_id=tok.BOS, eos_token_id=tok.BOS,
                                         pad_token_id=tok.BOS, **{**SIZES, **changes})
    model = transformers.NanoChatForCausalLM(config).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.save_pretrained(str(folder))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(tok)))
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config(tok, 16, None)}))
    return model, tok


def exact(model):
    """A NanoChat model whose RMSNorm and rotary angles compute in its own dtype (see the docstring)."""
    def rope(self, x, position_ids):
        D = self.config.hidden_size // self.config.num_attention_heads
        inv = 1.0 / self.config.rope_parameters["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
        angles = position_ids[..., None].to(torch.float64) * inv
        emb = torch.cat((angles, angles), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    model.model.rotary_emb.forward = types.MethodType(rope, model.model.rotary_emb)
    for m in model.modules():
        if isinstance(m, modeling_nanochat.NanoChatRMSNorm):
            m.forward = types.MethodType(lambda self, x: self._norm(x), m)
    return model


def test_our_modeling_code_with_nanochats_switches_computes_nanochat():
    from microgpt.export.hf_code.configuration_microgpt import MicroGPTConfig
    from microgpt.export.hf_code.modeling_microgpt import MicroGPTForCausalLM
    torch.manual_seed(1)
    theirs = transformers.NanoChatForCausalLM(transformers.NanoChatConfig(vocab_size=50, **SIZES)).eval()
    ours = MicroGPTForCausalLM(MicroGPTConfig(vocab_size=50, **{k: v for k, v in SIZES.items()}, pos="rope",
                                              qk_norm=True, mlp="relu2", final_norm=True, softcap=15.0)).eval()
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())  # the same names, one to one
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0.0, 0.3)
    ours.load_state_dict(theirs.state_dict())
    ids = torch.randint(0, 50, (3, 16))
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max().item() <= 1e-5
        ours, theirs = ours.double(), exact(theirs.double())
        assert (ours(ids).logits - theirs(ids).logits).abs().max().item() <= 1e-10
        assert ours.generate(ids[:, :4], do_sample=False, max_length=16, pad_token_id=0).tolist() == \
            theirs.generate(ids[:, :4], do_sample=False, max_length=16, pad_token_id=0).tolist()


def test_a_nanochat_folder_reads_as_a_microgpt_model(tmp_path):
    model, tok = nanochat(tmp_path)
    im = read_folder(str(tmp_path))
    assert im.kind == "nanochat" and im.dtype == "F32" and im.notes == []
    assert im.fields == {"vocab_size": tok.vocab_size, "n_layer": 2, "n_embd": 16, "n_head": 2, "block_size": 16,
                         "pos": "rope", "qk_norm": True, "mlp": "relu2", "final_norm": True, "softcap": 15.0,
                         "rope_theta": 10000.0}
    assert im.tokenizer.to_dict() == tok.to_dict()
    state = model.state_dict()
    names = {"wte": "model.embed_tokens.weight", "lm_head": "lm_head.weight",
             "layer1.attn_wk": "model.layers.1.self_attn.k_proj.weight",
             "layer0.mlp_fc2": "model.layers.0.mlp.fc2.weight"}
    assert len(im.weights) == 2 + 6 * 2 and "wpe" not in im.weights  # rotary positions: no wpe
    for ours, theirs in names.items():
        shape, flat = im.weights[ours]
        assert list(shape) == list(state[theirs].shape)
        assert list(flat) == state[theirs].flatten().tolist()


def test_bfloat16_weights_read_as_float32(tmp_path):
    model, _ = nanochat(tmp_path, torch.bfloat16)
    im = read_folder(str(tmp_path))
    assert im.dtype == "F32"  # every bfloat16 is a float32: nothing is lost
    theirs = model.state_dict()["model.layers.1.mlp.fc1.weight"]
    assert list(im.weights["layer1.mlp_fc1"][1]) == theirs.float().flatten().tolist()


def test_a_different_norm_eps_is_a_note(tmp_path):
    nanochat(tmp_path, rms_norm_eps=1e-6)
    assert "eps is 1e-06" in read_folder(str(tmp_path)).notes[0]


@pytest.mark.parametrize("change, words", [
    ({"num_key_value_heads": 1}, "grouped-query attention"),
    ({"intermediate_size": 48}, "MLPs of any width"),
    ({"tie_word_embeddings": True}, "tied weights"),
    ({"hidden_act": "gelu"}, "activation 'gelu'"),
    ({"attention_bias": True}, "biases"),
    ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}}, "scaled rotary"),
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "'llama' (LlamaForCausalLM) model"),
])
def test_anything_else_is_refused_in_one_line(tmp_path, change, words):
    nanochat(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, **change}))
    p = run_cli("import", "--from", tmp_path / "hf", "--out", tmp_path / "run")
    assert_one_line_error(p, words)
    assert p.returncode == 2 and not (tmp_path / "run").exists()


def test_weights_or_tokenizer_that_do_not_fit_are_refused(tmp_path):
    nanochat(tmp_path / "hf")
    broken = tmp_path / "broken"
    for change, words in (("tokenizer.json", "no tokenizer.json"), ("vocab_size", "belongs to another model"),
                          ("layers", "the weights do not fit the config")):
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(tmp_path / "hf", broken)
        config = json.loads((broken / "config.json").read_text())
        if change == "tokenizer.json":
            (broken / "tokenizer.json").unlink()
        else:
            key = "vocab_size" if change == "vocab_size" else "num_hidden_layers"
            (broken / "config.json").write_text(json.dumps({**config, key: config[key] + 1}))
        p = run_cli("import", "--from", broken, "--out", tmp_path / "run")
        assert_one_line_error(p, words)
        assert not (tmp_path / "run").exists()


def our_logits(run_dir, seqs):
    from microgpt.stages.open import open_run
    gen = open_run(str(run_dir)).model.generator(len(seqs))
    return torch.tensor([gen.next_logits([s[p] for s in seqs], p) for p in range(len(seqs[0]))],
                        dtype=torch.float64).transpose(0, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_nanochat_imports_and_gives_transformers_logits(tmp_path, dtype):
    model, tok = nanochat(tmp_path / "hf", dtype)
    run_cli("import", "--from", tmp_path / "hf", "--out", tmp_path / "run", check=True)
    seqs = [list(range(i, i + 16)) for i in (0, 100, 270)]
    with torch.no_grad():
        theirs = (exact(model) if dtype == torch.float64 else model)(torch.tensor(seqs)).logits.double()
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert (theirs - our_logits(tmp_path / "run", seqs)).abs().max().item() <= tol
    # and back: transformers' own class, no remote code; the same weights byte for byte
    run_cli("export", "--out", tmp_path / "run", "--to", tmp_path / "again", "--no-eval", check=True)
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["model_type"] == "nanochat" and not list((tmp_path / "again").glob("*.py"))
    back = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "again"), dtype=dtype)
    assert type(back).__name__ == "NanoChatForCausalLM"
    run_cli("import", "--from", tmp_path / "again", "--out", tmp_path / "run2", check=True)
    run_cli("export", "--out", tmp_path / "run2", "--to", tmp_path / "again2", "--no-eval", check=True)
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == \
        (tmp_path / "again2" / "model.safetensors").read_bytes()


def test_a_nanochat_run_exports_natively(tmp_path, words):
    run_cli("train", "--arch", "nanochat", "--engine", "numpy", "--data", words, "--steps", "20", "--n-layer", "2",
            "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--eval-every", "0", "--quiet",
            "--num-samples", "0", "--out", tmp_path / "run", check=True)
    run_cli("export", "--out", tmp_path / "run", "--to", tmp_path / "hf", check=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))  # no remote code
    assert type(model).__name__ == "NanoChatForCausalLM"
    seqs = [[tok.bos_token_id] + tok("emma")["input_ids"] + [3, 4, 5]]
    with torch.no_grad():
        theirs = exact(model.double())(torch.tensor(seqs)).logits
        assert (theirs - our_logits(tmp_path / "run", seqs)).abs().max().item() <= 1e-10
        ids = torch.tensor([[tok.bos_token_id]])
        text = tok.decode(model.generate(ids, do_sample=False)[0], skip_special_tokens=True)
    got = run_cli("sample", "--out", tmp_path / "run", "--temperature", "0", "--num", "1", check=True).stdout
    assert got.splitlines()[0].split(": ", 1)[1].rsplit("  (", 1)[0] == text


@pytest.mark.parametrize("switches", [["--pos", "rope", "--mlp", "relu2"],
                                      ["--qk-norm", "--final-norm", "--softcap", "5"]])
def test_other_modern_switches_export_with_our_code(tmp_path, words, switches):
    """Not nanochat's exact combination: model_type microgpt, our modeling code, microgpt's logits."""
    run_cli("train", *switches, "--engine", "numpy", "--data", words, "--steps", "10", "--n-layer", "2", "--n-embd",
            "16", "--n-head", "2", "--block-size", "16", "--eval-every", "0", "--quiet", "--num-samples", "0",
            "--out", tmp_path / "run", check=True)
    run_cli("export", "--out", tmp_path / "run", "--to", tmp_path / "hf", "--no-eval", check=True)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "microgpt"
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), trust_remote_code=True)
    seqs = [list(range(3, 19)), list(range(20, 4, -1))]
    with torch.no_grad():
        theirs = model(torch.tensor(seqs)).logits
    assert model.dtype == torch.float64 and (theirs - our_logits(tmp_path / "run", seqs)).abs().max().item() <= 1e-10

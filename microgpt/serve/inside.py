"""What the page shows beside the text: the attention over it, and the run's training so far.

Attention comes from microgpt.pictures.attention (the float64 numpy model of the same weights,
and the same token labels as `microgpt attention`), over the tokens the model reads for the
text on the page:
* a names-like run (docs): [BOS] + the text, the first block_size tokens (generation ends there);
* a run on continuous text (stream): the text's last block_size tokens, read from position 0
  (what the model would read to continue it);
* a chat model: the conversation through the chat template; a last assistant message is the
  reply so far (no <|assistant_end|> yet); the first block_size tokens.
"""

from microgpt.errors import MicroGPTError
from microgpt.serve.runs import default_stream_prompt
from microgpt.serve.schema import bad

MAX_SHOWN = 96      # tokens whose attention the page draws at most (the last ones): 96 x 96 cells a head
MAX_TEXT = 100_000  # characters of text to draw attention over (only the last block_size tokens matter)


def attention_ids(served, body):
    """The token ids of the text (or conversation) in a request body."""
    tok, bs = served.tokenizer, served.block_size
    try:
        if served.chat:
            from microgpt.serve.completions import chat_prompt
            from microgpt.serve.schema import chat_messages
            messages = chat_messages(body.get("messages"))
            reply = messages.pop()["content"] if messages[-1]["role"] == "assistant" and len(messages) > 1 else None
            ids = chat_prompt(tok, messages) + (tok.encode(reply) if reply is not None else [])
            return ids[:bs]
        text = body.get("text")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise bad(f"text must be a string of at most {MAX_TEXT} characters", "text", "invalid_type")
        if served.mode == "docs":
            return ([tok.BOS] + tok.encode(text))[:bs]
        return (tok.encode(text) or tok.encode(default_stream_prompt(tok)))[-bs:]
    except MicroGPTError as e:
        raise bad(str(e), "text", "invalid_characters") from None


def attention_of(served, body):
    """{"tokens": [label per position], "maps": [layer][head][query][key]} (4 decimals; zeros after the
    query). Past MAX_SHOWN tokens only the last ones are sent (their rows and columns of the maps,
    computed over the whole sequence), with "first": the position of the first one sent."""
    import numpy as np

    from microgpt.pictures.attention import attention_maps, token_labels
    ids = attention_ids(served, body)
    maps = attention_maps(served.attention_model(), ids)  # [L, H, T, T]
    first = max(0, len(ids) - MAX_SHOWN)
    return {"model": served.name, "step": served.step, "first": first,
            "tokens": token_labels(served.tokenizer, ids)[first:],
            "maps": np.round(maps[:, :, first:, first:], 4).tolist()}


def metrics_since(run_dir, since):
    """The run's metrics.jsonl rows from number `since` on, and how many there are; none yet: []."""
    import os

    from microgpt.train.metrics import read_metrics
    if not os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        return {"rows": [], "total": 0}
    rows = read_metrics(run_dir)
    keep = ("step", "train_loss", "val_loss", "val_bpb", "lr", "elapsed", "reward_mean")
    return {"rows": [{k: r[k] for k in keep if k in r} for r in rows[since:]], "total": len(rows)}

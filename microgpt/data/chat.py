"""Conversations made ready to train: rendered with the chat template into (ids, mask) pairs,
shuffled by the run's random stream, the validation split taken from the end; and the tokenizer
a chat model needs (the chat's special tokens after every existing id)."""

from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS, conversation_text, render_conversation
from microgpt.errors import MicroGPTError
from microgpt.tokenizers import CharTokenizer


class ChatDataset:
    """Conversations rendered for training: (ids, mask) pairs, shuffled by the run's random
    stream, the validation split taken from the end."""

    mode = "chat"

    def __init__(self, conversations, tokenizer, block_size, val_frac, rng):
        """conversations: checked already (as read_conversations returns them)."""
        conversations = list(conversations)
        rng.shuffle(conversations)
        self.tokenizer, self.block_size = tokenizer, block_size
        rendered, kept, self.n_truncated, self.n_dropped = [], [], 0, 0
        for conv in conversations:
            ids, mask, truncated = render_conversation(tokenizer, conv, max_tokens=block_size + 1, checked=True)
            self.n_truncated += truncated
            if any(mask[1:]):
                rendered.append((ids, mask))
                kept.append(conv)
            else:
                self.n_dropped += 1  # cut before the assistant says anything: nothing to learn
        n_val = int(len(rendered) * val_frac)
        if len(rendered) - n_val < 1:
            raise MicroGPTError(f"only {len(rendered)} conversations with something to learn: too few to "
                                f"train (and hold out {val_frac:.0%}); give more, or a larger --block-size")
        self.train, self.val = rendered[:len(rendered) - n_val], rendered[len(rendered) - n_val:]
        self.val_conversations = kept[len(rendered) - n_val:]  # (questions to sample answers to)
        self.train_text = self.val_text = set()

    def describe(self):
        return (f"{len(self.train)} train / {len(self.val)} val conversations, "
                f"vocab size {self.tokenizer.vocab_size}")

    def train_batch(self, step, batch_size, seed=None):
        start = step * batch_size
        return [self.train[(start + b) % len(self.train)] for b in range(batch_size)]

    def eval_pairs(self, split, max_seqs=0):
        pairs = self.train if split == "train" else self.val
        return pairs[:max_seqs] if max_seqs else pairs


def chat_tokenizer(base, conversations):
    """The base tokenizer with the chat's special tokens (and a char tokenizer with the
    characters of the conversations) as new ids after every existing one."""
    if isinstance(base, CharTokenizer):
        base = base.with_chars("".join(conversation_text(c, checked=True) for c in conversations))
    return base.with_special_tokens(CHAT_SPECIAL_TOKENS)

"""What a run trains on: text files (text.py: documents or one stream, split and batched),
conversations (conversations.py: the JSONL format), the chat template (chat_template.py: a
conversation as tokens and a loss mask) and conversations made ready to train (chat.py)."""

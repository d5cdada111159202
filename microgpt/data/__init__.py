"""What a run trains on.

One text file, in memory (the seed's run, and any file that fits):
    text.py            --data FILE: documents (one per line) or one stream, split and batched
A corpus of any size, prepared once (`microgpt data prepare`), then memory-mapped:
    sources.py         files, folders and globs -> parts of work -> documents
    readers.py         plain text and JSONL (also .gz / .zst) read a block at a time
    parquet.py         a Parquet column read one row group at a time
    prepare.py         the plan, the split, the tokenizer, the manifest (resumable)
    pool.py            worker processes with one progress line, and a clean stop
    encode.py          one work item -> its shards (what a worker does)
    progress.py        the progress line
    shards.py          the on-disk format: token shards, their index, the manifest
    sharded.py         a prepared corpus as a run's dataset
Conversations:
    conversations.py   the JSONL format;  chat_template.py: a conversation as tokens and a loss mask
    chat.py            conversations made ready to train

A run's dataset (text.Dataset, sharded.ShardedDataset, chat.ChatDataset) offers .tokenizer,
describe(), train_batch(step, batch_size, seed) (the GLOBAL batch: each torchrun rank takes its
share), eval_pairs(split, max_seqs) and `text in train_text` / `val_text`.
"""

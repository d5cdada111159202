"""The torch engine: the same GPT in PyTorch (GPU, bf16, torch.compile, DDP via torchrun)."""

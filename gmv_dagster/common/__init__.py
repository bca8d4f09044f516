"""Small utilities every package shares: file hashing, atomic writes, chunking, seeded sampling, image tensors."""

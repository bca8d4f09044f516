"""The demo's generative models (a class-conditional VAE and DDPM): they make generated images to value (no Dagster)."""

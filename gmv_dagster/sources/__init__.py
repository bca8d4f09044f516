"""Where images come from: folders, .npz files, Fashion-MNIST (the demo), and the batches of generated images
(no Dagster)."""

"""What each column of the DuckDB file's tables holds: the IO manager writes these into every stored table's column
schema (`dagster/column_schema`, the UI's column descriptions). A column added to a table asset needs its line here
(tests/assets/test_catalog.py fails on a stored column without one)."""

# A column name's meaning in every table that has it, unless TABLE_COLUMNS says otherwise for that table.
COLUMNS = {
    # manifests (training_images, generated_images) and the tables keyed by their ids
    "id": "Stable id of the training image: its path under the training folder, `<.npz stem>:<row>` for a .npz, "
    "`fashion-mnist-train:<index>` in the demo",
    "uri": "Where the image is read from: its file, or `<.npz or IDX file>#<row>`",
    "content_hash": "sha256 of the image file's bytes (of its pixel array, dtype and shape, for arrays): a changed "
    "image is a new image, whatever its id",
    "label": "Class: the first folder of the image's path under its source (none at the top level); in the demo the "
    "Fashion-MNIST class, for a generated image the class the generator was asked for",
    "attributes": "JSON object of the image's row of attributes.csv beside the images ({} without one); C2 compares "
    "them",
    "batch": "The batch of generated images (a partition of generated_batches): the configured source's (`demo`, or "
    "its folder or file name) or an inbox folder's name",
    "shard": "The training shard whose row this is (a partition, `<i>-of-<n>`), where GMV_TRAIN_SHARDS > 1",
    # embeddings
    "embedder": "Fingerprint of the embedder that made the vector: backbone | weights sha256 | input size | channels "
    "| precision; another fingerprint re-embeds",
    "embedding": "The image's L2-normalised feature vector f(x)",
    "vector_row": "Row of the image's vector in its shard's vectors file under GMV_HOME/vectors (read memory-mapped)",
    # matching and credit
    "gen_id": "Id of the generated image: `<batch>/<its path in the batch>`",
    "train_id": "Id of the training image (training_images.id)",
    "rank": "Place of the training image among the generated image's matches, 1 = nearest",
    "distance": "Distance from the generated to the training image under the index's metric (1 - cosine, or squared "
    "L2), after the re-rank where one is set",
    "weight": "w_ij: softmax(-distance / tau) over the generated image's top k",
    "credit": "credit_ij = q_j * w_ij: the part of the generated image's quality this training image receives",
    "value": "phi_i: the sum of the training image's credits over every generated image of every batch (0 when "
    "never matched)",
    "n_generated": "Generated images (over every batch) that give the training image credit",
    # credit_temperature
    "k": "Contributors kept per generated image (the ranking's top k) that tau was fitted for",
    "candidates": "K': neighbours recalled before the re-rank",
    "rerank": "Re-rank of the candidates: none, l2 (pixels), aligned or lpips",
    "temperature": "tau of the credit softmax: median_spread / divisor",
    "median_spread": "Median over the sampled training images of d_k - d_1, the gap between their 1st and k-th "
    "nearest other training image",
    "spread_p10": "10th percentile of the same gap",
    "spread_p50": "50th percentile of the same gap",
    "spread_p90": "90th percentile of the same gap",
    "queries": "Training images sampled to measure the gap",
    "spread_k": "Neighbours per sampled image: k, at most the training images less one",
    "divisor": "tau = median_spread / divisor",
    # quality: calibration, per-image statistics, scores
    "metric": "Quality metric: matched_detail (compares each generated image with its matches), niqe_refit or a "
    "pyiqa metric",
    "good": "Raw score of clean images (q = 1); null for matched_detail, which has no anchors",
    "bad": "Raw score of noise (q = 0); null for matched_detail",
    "params_file": "The fitted scorer: matched_detail's fences (JSON), niqe_refit's pristine model, or a weights file",
    "params_sha256": "sha256 of params_file; scoring refuses a file that differs",
    "input_size": "Input size in px a pyiqa metric scores at (unused by matched_detail and niqe_refit)",
    "niqe_block": "niqe_refit: the block size in px NIQE read; null otherwise",
    "reference_size": "Training images that calibrated the scorer (a seeded sample)",
    "seed": "Seed of that sample",
    "height": "Image height in px",
    "width": "Image width in px",
    "detail": "Detail D = log(1 + mean squared Laplacian) of the luminance (method/detail.py)",
    "noise": "Noise N: 1/2 log of the finest diagonal Haar energy of the image's smoothest 4x4-px cells",
    "blocking": "JPEG blocking B: second differences across 8-px block edges against elsewhere, and the DCT's zeros",
    "raw_score": "The metric's raw score (matched_detail: its penalty, q = clip(1 - raw_score, 0, 1))",
    "q": "Quality q_j in [0, 1]: what the generated image hands out as credit",
    "blur": "Detail lost against the most lenient of the image's references: min over r of D_r - D_j (null for a "
    "no-reference metric)",
    "note": "Why the image got q = 0 without a score (null when it was scored)",
    # similarity_model
    "weights_file": "The learned similarity's weights under GMV_HOME/similarity",
    "weights_sha256": "sha256 of weights_file",
    "state_sha256": "sha256 of the model's state (the data version: embeddings follow a change of it)",
    "training_key": "sha256 of what decides the weights (training ids and hashes in order, the config): unchanged, "
    "the file is reused",
    "channels": "Input channels: 3 where the training images are in colour, else 1",
    "dim": "Embedding dimension",
    "image_size": "Input size in px the similarity is trained and run at",
    "train_images": "Training images it was trained on (a seeded sample)",
    "reused": "True when the weights file existed and was not trained again",
    # reports: methods
    "method": "Valuation method: gmv (GMValuator as the pipeline ran it), an ablation (gmv_q1, gmv_exact, ...) or a "
    "baseline (random, uniform, tracin); gmv_<backbone>: on another embedder",
    "score": "The method's attribution to the training image (gmv: its credit within the top k, 0 deeper)",
    "stage": "Stage of the method: embed_train, embed_generated, index, match, rerank, temperature, quality, credit, "
    "values, gradients",
    "seconds": "Seconds the stage took on the pipeline's data",
}

# The long criterion table (reports/tables.py REPORT_SCHEMA) that every criterion_* asset stores.
CRITERION_COLUMNS = {
    "criterion": "Criterion: C1 to C4, reasonableness, fidelity, diversity, consistency, LDS",
    "metric": "What the criterion measures (e.g. C1@k, AUC (OOD valued lower), Gini)",
    "setting": "Where it was measured: a k, a kind of OOD image, a removal arm, a stage, a class",
    "value": "The measure (null where it did not run: see note)",
    "n": "Items it was measured over (generated images, training images, retrains)",
    "ci_low": "Lower end of its 95% interval (null where none)",
    "ci_high": "Upper end of its 95% interval (null where none)",
    "note": "Why it did not run, or how to read it",
}

# Where a column name means something else in one table.
TABLE_COLUMNS = {
    "generated_images": {"id": COLUMNS["gen_id"]},
    "generated_embeddings": {"id": COLUMNS["gen_id"]},
    "training_values": {"rank": "Place of the training image by value, 1 = most valuable (ties by train_id)"},
    "quality_scores": {
        "noise": "Noise added against the most lenient of the image's references: min over r of N_j - N_r (null for "
        "a no-reference metric)",
        "blocking": "Blocking added against the most lenient reference: min over r of B_j - B_r (null for a "
        "no-reference metric)",
    },
    "method_values": {"value": "The training image's value by this method"},
    "method_contributors": {"rank": "Place of the training image among the method's contributors, 1 = strongest"},
    "method_timings": {"n_generated": "Generated images the method valued (C4 divides the seconds by them)"},
}


def column_description(table: str, column: str) -> str | None:
    """The description of `column` of table asset `table` (None where none is written)."""
    own = TABLE_COLUMNS.get(table) or (CRITERION_COLUMNS if table.startswith("criterion_") else {})
    return own.get(column, COLUMNS.get(column))

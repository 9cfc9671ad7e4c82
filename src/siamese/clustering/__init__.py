"""Grouping unlabelled images by identity with a trained model (`siamese cluster`).

- `neighbour_graph`: edges between embeddings within the decision distance, from the
  gallery's search (no N × N matrix).
- `algorithms`: connected components, Chinese whispers, agglomerative (average / complete)
  cut at the threshold, HDBSCAN.
- `clusters`: `cluster_embeddings` → `Clustering` (largest first, singletons apart, centre
  distances, uncertain members).
- `scores`: pairwise and BCubed precision / recall / F1 against true labels.
- `photo_faces`: the faces of a photo library embedded once, cached by file hash (resumable).
- `review`: the result written for a person to review (clusters.json / .csv, a folder per
  cluster, contact sheets) and read back after renaming, for `gallery enroll --clusters`.
"""

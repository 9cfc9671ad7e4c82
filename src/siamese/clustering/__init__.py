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
  cluster, contact sheets) and read back after renaming; `cluster_enrollment` enrolls the
  named folders into a gallery (`gallery enroll --clusters`).
- `photo_clustering`: `cluster_photos`, the whole job, and the decision distance from the
  model's calibration (`decision_distance`).

It may import `recognition` (the models, the gallery's search), `data` (image files, face
crops), `evaluation` (progress bars), `atomic_files` and `devices`; scipy and scikit-learn
(the `cluster` extra) only inside the algorithms that need them.
"""

from siamese.clustering.algorithms import ALGORITHMS
from siamese.clustering.clusters import DEFAULT_ALGORITHM, Clustering, cluster_embeddings
from siamese.clustering.scores import ClusteringScores, clustering_scores

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "Clustering",
    "ClusteringScores",
    "cluster_embeddings",
    "clustering_scores",
]

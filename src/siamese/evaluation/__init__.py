"""Measuring trained embeddings: `verification` (ROC, AUC, EER, TAR@FAR, 10-fold accuracy),
`retrieval` (precision@1, R-precision, MAP@R, recall@k, k-NN accuracy), `fewshot` (N-way
K-shot episodes), `novelty` (Gini and distance detectors, AUROC), `probe` (a softmax
classifier on frozen embeddings), `validation` (what training runs check every few epochs),
and `run_evaluation` + `report_files` (what `siamese evaluate RUN` does and writes)."""

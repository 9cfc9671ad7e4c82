"""Measuring trained embeddings: `verification` (ROC, AUC, EER, TAR@FAR, 10-fold accuracy),
`retrieval` (precision@1, R-precision, MAP@R, recall@k, k-NN accuracy), `fewshot` (N-way
K-shot episodes), `novelty` (Gini and distance detectors, AUROC), `probe` (a softmax
classifier on frozen embeddings), `validation` (what training runs check every few epochs),
and `embed` (a model over a dataset). These are functions of tensors — embeddings, labels,
distances — that know nothing of runs or files; `run_evaluation` builds `siamese evaluate RUN`
on them. May import `distances`, `data` (labelled examples, pair draws) and `errors`; the
metric modules never import `training`, `config` or `plots`."""

"""Model-based quality filtering with DCLM's fastText recipe: train a classifier (`dclm.classifier.train`),
score pages into sidecar attribute shards (`dclm.classifier.score`), and select pages by threshold or top
fraction without re-scoring (`dclm.classifier.select`). The scoring rule lives in `dclm.classifier.model`.
Submodules are imported on demand so `dclm --help` and the mapper catalogue stay light."""

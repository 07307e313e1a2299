"""Model-based quality filtering with DCLM's fastText recipe: train a classifier (`dclm.quality.train`),
score pages into sidecar attribute shards (`dclm.quality.score`), and select pages by threshold or top
fraction without re-scoring (`dclm.quality.select`). The scoring rule lives in `dclm.quality.classifier`.
Submodules are imported on demand so `dclm --help` and the mapper catalogue stay light."""

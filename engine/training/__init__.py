"""The parts of a training session (:mod:`engine.session` keeps the loop and its controls).

- :mod:`engine.training.device`: device and mixed precision (``Precision``)
- :mod:`engine.training.distributed`: several processes: DDP, synchronised BatchNorm, epoch shards
- :mod:`engine.training.optim`: optimiser (AdamW, SGD, LARS) and learning-rate schedule
- :mod:`engine.training.rundata`: ``prepare_data(cfg)``, the only place a run's splits and samples are made
- :mod:`engine.training.checkpoints`: ``save_checkpoint``, ``load_checkpoint``, ``load_run_method``,
  ``load_run_encoder``
- :mod:`engine.training.monitor`: online kNN, final evaluation, embedding and reconstruction snapshots

Seeds live in :mod:`engine.seeds`; run-folder paths in :mod:`engine.runs`.
"""

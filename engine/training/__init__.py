"""The parts of a training session (:mod:`engine.session` keeps the loop and its controls).

- :mod:`engine.training.device`: device and mixed precision (``Precision``)
- :mod:`engine.training.learner`: ``Learner``: the method on its device, its step (DDP, compile), the
  optimiser and precision; one optimiser step
- :mod:`engine.training.distributed`: several processes: DDP, synchronised BatchNorm, epoch shards,
  ``Ending`` (when they stop together: budget, stop request, divergence)
- :mod:`engine.training.optim`: optimiser (AdamW, SGD, LARS), learning-rate schedule and ``Budget``
- :mod:`engine.training.batch`: ``resolve_batch``: the batch size ``auto`` takes on the device (a GPU's
  measured by two probe steps) and the learning rate scaled with it
- :mod:`engine.training.progress`: ``Progress`` (step, epoch, samples, training time) and ``StepMeter``
- :mod:`engine.training.rundata`: ``prepare_data(cfg)``, the only place a run's splits and samples are made
- :mod:`engine.training.checkpoints`: ``save_checkpoint``, ``load_checkpoint``, ``load_run_method``,
  ``load_run_encoder``
- :mod:`engine.training.run_checkpoints`: ``RunCheckpoints``: a session's saves, ``--resume``, the last
  good state and what a divergence leaves
- :mod:`engine.training.monitor`: online kNN, final evaluation, embedding and reconstruction snapshots
- :mod:`engine.training.report`: ``Reporter``: step metrics, evaluations, snapshots and the summary as
  messages and run-folder records
- :mod:`engine.training.record`: the run folder a session writes (claim, status, metrics)
- :mod:`engine.training.faults`: the last good state and the one-line message of each failure

Seeds live in :mod:`engine.seeds`; run-folder paths in :mod:`engine.runs`.
"""

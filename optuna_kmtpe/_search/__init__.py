"""The search room: :class:`~optuna_kmtpe.MixedPrecisionSearch` (``api``), its layer choices
(``choices``), the Hessian-pruned space (``space``), the prepared trial objective and the
reuse of repeated configurations (``objective``), the study's life cycle for ``kmtpe search``
(``study``), worker processes (``workers``), the per-trial report (``report``), the results
table and plots (``results``) and checkpoints (``checkpoint``). It builds on the compression
primitives and knows no model zoo or dataset."""

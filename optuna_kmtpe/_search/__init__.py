"""The search room: :class:`~optuna_kmtpe.MixedPrecisionSearch` (``api``), its layer choices
(``choices``), the prepared trial objective (``objective``), the study's life cycle for
``kmtpe search`` (``study``), worker processes (``workers``) and the per-trial report
(``report``). It builds on the compression primitives and knows no model zoo or dataset."""

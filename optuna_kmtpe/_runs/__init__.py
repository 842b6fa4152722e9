"""The runs of ``kmtpe search`` and ``kmtpe compare`` on the model zoo (no argument parsing):
``zoo`` (the side both share), ``search_run``, ``compare_run``, ``compare_report``."""

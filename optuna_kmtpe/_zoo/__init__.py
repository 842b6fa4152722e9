"""The model zoo and the built-in datasets, used by the command line, the bench and the
tests: ``catalog`` (names), ``models`` (networks and their width plans), ``data``
(scikit-learn digits, CIFAR), ``train`` (the recipe on those datasets)."""

from optuna_kmtpe import KMeansTPESampler


__all__ = ["KMeansTPESampler"]

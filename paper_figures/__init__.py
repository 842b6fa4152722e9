"""Scripts that regenerate the paper's figures and tables from this package's results.

``kmtpe figures --results DIR --out DIR`` runs all of them; each module can also be used alone.
"""

"""Compression primitives: what a layer is (``layers``), fake quantisation (``quant``), width
multipliers (``widths``) and weight inheritance (``inherit``), the hardware cost model
(``cost``) and its limits (``limits``), Hessian sensitivity (``sensitivity``) and the pruned
space (``search_space``), training loops over any batches (``loops``). They know no model
zoo, no dataset and no study; the sampler room's NumPy k-means is their only import from
elsewhere in the package."""

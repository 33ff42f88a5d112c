"""Feature-map pruning (Molchanov et al. 2017) that physically shrinks a model.

* ``graph``: which units can be removed and what each removal touches;
* ``criteria``: importance scores in a registry (``taylor``, ``l1``, ``random``);
* ``surgery``: ``remove_units`` cuts the weights and returns a smaller Model;
* ``loop`` / ``run``: the prune -> fine-tune -> measure loop behind ``dtnn prune``;
* ``cost`` / ``report``: parameters, MB, FLOPs, latency; CSV and plots.

Submodules are imported on use (this package is imported by ``dtnn.config``).
"""

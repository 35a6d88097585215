"""One training run: data sets (and Shapeset), models, initializations, optimizers, the training loop and
Monte-Carlo dropout. Reads a composed config; writes through :mod:`initlab.runs`; probes through
:mod:`initlab.probing`; predicts through :mod:`initlab.theory`."""

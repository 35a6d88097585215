"""Sweeps: the Hydra callback that indexes a multirun, the sweep index, resume, the lifeline that ends
orphaned jobs, and the objective an optimizing sweeper reads."""

"""Mean-field theory: single-layer maps (:mod:`~initlab.theory.meanfield`) and the prediction for a whole
network (:mod:`~initlab.theory.predict`). Takes layer specs and an activation module; sits below the training
stage and imports nothing of it (:mod:`initlab.lab.prediction` hands a run's config in)."""

# Schoenholz et al. 2017 (Fig. 5): nets deeper than about 6·ξ_c do not train -- the trainable depth.
TRAINABLE_XI = 6.0

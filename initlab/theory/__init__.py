"""Mean-field theory: single-layer maps (:mod:`~initlab.theory.meanfield`) and the prediction for a whole
network (:mod:`~initlab.theory.predict`). Takes layer specs and an activation; sits below the training
stage."""

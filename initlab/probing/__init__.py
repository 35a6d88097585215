"""The probe library for any ``nn.Module``: hooks, the capture of a probed step, its statistics, the
:class:`~initlab.probing.probes.Probe` and the public loop API (``initlab.probe``). It knows neither Hydra's
config composition nor the training stage."""

"""Config sections of the single-module subsystems (light: :mod:`fedqnn.schema` only).

Packages own their section next to their code (``fedqnn.network.config``,
``fedqnn.partitions.config``, ``fedqnn.security.config``, ``strategies.config``,
``clients.config``); the subsystems that are one heavy module (the run itself, faults, QPU noise,
the model, local training, data) keep theirs here. :mod:`fedqnn.config` composes them all.
"""

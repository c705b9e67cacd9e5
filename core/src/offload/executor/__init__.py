"""The executor layer: what an embedder needs to run commands on backends.

Models, the backend contract, hookspecs, the plugin manager, the system config,
selection and :class:`offload.Executor`. Nothing here knows workflows: the Digdag
layer (:mod:`offload.workflow.parser`) is built on top of it and reaches backends only
through ``Executor``. Use the names exported by :mod:`offload`; these modules are private.
"""

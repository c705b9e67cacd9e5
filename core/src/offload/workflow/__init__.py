"""The Digdag workflow layer: ``.dig`` files, params, operators, the runner, the journal, the CLI.

Built on the executor layer (:mod:`offload.executor`), which it reaches only through
:class:`offload.Executor`. Use the names exported by :mod:`offload`; these modules are private.
"""

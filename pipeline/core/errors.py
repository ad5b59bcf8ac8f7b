"""User-facing errors.

Anything a user can fix (bad params, bad input files, missing artifacts) raises
:class:`PipelineError` with a one-line message saying what is wrong and what to
do. The CLI prints it as ``error: <message>`` and exits with status 2, never a
traceback.
"""


class PipelineError(Exception):
    """An error the user can act on; its message is shown as-is."""
